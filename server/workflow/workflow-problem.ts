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
    | "no_output_node"
    /** Past a size limit (nodes, inputs of a node, characters of a value or of the document). */
    | "too_large"
    /** Stands for the problems left out of a long list (MAX_LISTED_PROBLEMS). */
    | "more_problems";
  readonly nodeId?: string;
  readonly input?: string;
  readonly message: string;
}

/** Problems listed in one answer; a document with a million wrong inputs must not make a 200 MB answer. */
export const MAX_LISTED_PROBLEMS = 100;

/**
 * The first MAX_LISTED_PROBLEMS problems, and one that counts the rest when there are more
 * (`unlisted`: problems found but never spelled out, counted in that rest).
 */
export function capProblems(problems: readonly WorkflowProblem[], unlisted = 0): WorkflowProblem[] {
  if (problems.length <= MAX_LISTED_PROBLEMS && unlisted === 0) return problems.slice();
  const rest = Math.max(0, problems.length - MAX_LISTED_PROBLEMS) + unlisted;
  return [
    ...problems.slice(0, MAX_LISTED_PROBLEMS),
    { code: "more_problems", message: `and ${rest.toLocaleString("en-US")} more problem${rest === 1 ? "" : "s"}` },
  ];
}

/** Thrown when a workflow cannot run; carries every problem found, not just the first. */
export class WorkflowInvalidError extends Error {
  constructor(readonly problems: readonly WorkflowProblem[]) {
    // A capped list ends with "and N more problems", which is not one problem itself.
    const capped = problems.at(-1)?.code === "more_problems";
    const count = capped ? `more than ${problems.length - 1} problems` : `${problems.length} problem${problems.length === 1 ? "" : "s"}`;
    super(`workflow is invalid (${count}):\n` + problems.map((p) => `  - ${formatProblem(p)}`).join("\n"));
    this.name = "WorkflowInvalidError";
  }
}

export function formatProblem(problem: WorkflowProblem): string {
  const where = [problem.nodeId !== undefined ? `node ${problem.nodeId}` : "", problem.input ? `input "${problem.input}"` : ""]
    .filter(Boolean)
    .join(", ");
  return where ? `${where}: ${problem.message}` : problem.message;
}
