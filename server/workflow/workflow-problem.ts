/** One thing wrong with a workflow, keyed by node and input so the editor can mark the right place. */
export interface WorkflowProblem {
  readonly code:
    | "invalid_document"
    | "duplicate_node_id"
    | "unknown_node_type"
    | "unknown_input"
    | "missing_input"
    | "missing_link_node"
    | "missing_link_output"
    | "type_mismatch"
    | "invalid_value"
    | "out_of_range"
    | "not_in_options"
    | "cycle"
    /** Found by the node's own check of its inputs: a missing file, a size the model cannot take, … */
    | "input_check"
    | "no_output_node";
  readonly nodeId?: string;
  readonly input?: string;
  readonly message: string;
}

/** Thrown when a workflow cannot run; carries every problem found, not just the first. */
export class WorkflowInvalidError extends Error {
  constructor(readonly problems: readonly WorkflowProblem[]) {
    super(
      `workflow is invalid (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  - ${formatProblem(p)}`).join("\n"),
    );
    this.name = "WorkflowInvalidError";
  }
}

export function formatProblem(problem: WorkflowProblem): string {
  const where = [problem.nodeId !== undefined ? `node ${problem.nodeId}` : "", problem.input ? `input "${problem.input}"` : ""]
    .filter(Boolean)
    .join(", ");
  return where ? `${where}: ${problem.message}` : problem.message;
}
