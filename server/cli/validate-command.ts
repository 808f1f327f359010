import { parseArgs } from "node:util";
import { createBuiltinRegistry } from "../../nodes/index.ts";
import { validateWorkflow } from "../workflow/validate-workflow.ts";
import { formatProblem } from "../workflow/workflow-problem.ts";
import { cliDataFolders } from "./cli-data-folders.ts";
import type { CliIo } from "./cli-io.ts";
import { readWorkflowFile } from "./read-workflow-file.ts";

/** Every check `run` makes before it needs a model: the document, the graph, the values, and each node's own checks. */
export async function validateCommand(args: string[], io: CliIo): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { json: { type: "boolean" }, data: { type: "string" } } });
  if (positionals.length !== 1) {
    io.stderr.write("usage: maskflow validate WORKFLOW.json [--data DIR] [--json]\n");
    return 2;
  }
  const [name] = positionals;
  // Pictures are looked for where `run` looks for them (DATA/input, next to the workflow, the shipped examples).
  const files = cliDataFolders({ workflowFile: name, data: values.data });
  const validation = validateWorkflow(await readWorkflowFile(name), createBuiltinRegistry(), { requireOutputNode: true, files });
  if (values.json) {
    io.stdout.write(JSON.stringify(validation.ok ? { ok: true, problems: [] } : { ok: false, problems: validation.problems }) + "\n");
  } else if (validation.ok) {
    io.stdout.write(`${name}: valid (${validation.workflow.nodes.length} nodes)\n`);
  } else {
    io.stderr.write(`${name}: ${validation.problems.length} problem(s)\n`);
    for (const problem of validation.problems) io.stderr.write(`  - ${formatProblem(problem)}\n`);
  }
  return validation.ok ? 0 : 1;
}
