import type { WorkflowDocument } from "../workflow/workflow-document.ts";

/**
 * Applies `--set NODE.INPUT=VALUE` overrides to a workflow before it runs. VALUE is read as JSON when it
 * parses (42, 7.5, true, "text") and as plain text otherwise, so `--set 3.positive=a red chair` works.
 */
export function applyOverrides(workflow: unknown, overrides: readonly string[]): unknown {
  if (!overrides.length) return workflow;
  const document = structuredClone(workflow) as Partial<WorkflowDocument>;
  if (!Array.isArray(document.nodes)) throw new Error("--set needs a workflow with a nodes list");
  for (const override of overrides) {
    const match = /^([^.=]+)\.([^=]+)=(.*)$/s.exec(override);
    if (!match) throw new Error(`--set "${override}" must look like NODE.INPUT=VALUE, e.g. --set 5.seed=42`);
    const [, nodeId, input, text] = match;
    const node = document.nodes.find((n) => n.id === nodeId);
    if (!node) {
      throw new Error(`--set "${override}": no node "${nodeId}"; node ids: ${document.nodes.map((n) => n.id).join(", ")}`);
    }
    node.inputs = { ...node.inputs, [input]: parseValue(text) };
  }
  return document;
}

function parseValue(text: string): string | number | boolean | null {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === "number" && !Number.isSafeInteger(value) && Number.isInteger(value)) return text; // big seeds stay exact
    if (value === null || ["string", "number", "boolean"].includes(typeof value)) return value as string | number | boolean | null;
  } catch {
    // not JSON: plain text
  }
  return text;
}
