import { parseArgs } from "node:util";
import { createBuiltinRegistry } from "../../nodes/index.ts";
import { validateWorkflow } from "../workflow/validate-workflow.ts";
import { formatProblem } from "../workflow/workflow-problem.ts";
import type { CliIo } from "./main.ts";
import { readWorkflowFile } from "./read-workflow-file.ts";

export async function validateCommand(args: string[], io: CliIo): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { json: { type: "boolean" } } });
  if (positionals.length !== 1) {
    io.stderr.write("usage: maskflow validate WORKFLOW.json [--json]\n");
    return 2;
  }
  const validation = validateWorkflow(await readWorkflowFile(positionals[0]), createBuiltinRegistry(), { requireOutputNode: true });
  if (values.json) {
    io.stdout.write(JSON.stringify(validation.ok ? { ok: true, problems: [] } : { ok: false, problems: validation.problems }) + "\n");
  } else if (validation.ok) {
    io.stdout.write(`${positionals[0]}: valid (${validation.workflow.nodes.length} nodes)\n`);
  } else {
    io.stderr.write(`${positionals[0]}: ${validation.problems.length} problem(s)\n`);
    for (const problem of validation.problems) io.stderr.write(`  - ${formatProblem(problem)}\n`);
  }
  return validation.ok ? 0 : 1;
}
