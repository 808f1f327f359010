/**
 * Which node input a folder of pictures feeds: `1.image=DIR` on the command line, `{"1.image": "photos"}` in
 * the API. Only inputs that name a picture file (the `image` widget: LoadImage, LoadMask) can be batched,
 * since each item sets that input to one file.
 */
import type { NodeRegistry } from "../../nodes/registry.ts";

export interface BatchTarget {
  /** `1.image`, as the user wrote it: the key of the item's files. */
  readonly key: string;
  readonly nodeId: string;
  readonly input: string;
}

/** `NODE.INPUT` → its parts; anything else is an error that shows the form. */
export function parseTargetKey(key: string, where: string): BatchTarget {
  const match = /^([^.=\s]+)\.([^.=\s]+)$/.exec(key);
  if (!match) throw new Error(`${where} "${key}" must name a node input as NODE.INPUT, e.g. 1.image`);
  return { key, nodeId: match[1], input: match[2] };
}

/**
 * Every reason the targets cannot be batched in this workflow (none when they can): an unknown node,
 * an input that takes no file name, or the same input twice.
 */
export function batchTargetProblems(targets: readonly BatchTarget[], workflow: unknown, registry: NodeRegistry, where: string): string[] {
  const nodes = workflowNodes(workflow);
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const target of targets) {
    if (seen.has(target.key)) problems.push(`${where} ${target.key} is given twice; each input takes one folder`);
    seen.add(target.key);
    const node = nodes.find((n) => n.id === target.nodeId);
    if (!node) {
      problems.push(`${where} ${target.key}: no node "${target.nodeId}"; node ids: ${nodes.map((n) => n.id).join(", ") || "none"}`);
      continue;
    }
    const definition = registry.get(node.type);
    if (!definition) continue; // The workflow's own validation names the unknown type.
    if (definition.inputs[target.input]?.widget !== "image") {
      const pictureInputs = nodes.flatMap((n) =>
        Object.entries(registry.get(n.type)?.inputs ?? {})
          .filter(([, spec]) => spec.widget === "image")
          .map(([name]) => `${n.id}.${name} (${n.type})`),
      );
      problems.push(
        `${where} ${target.key}: node ${target.nodeId} (${node.type}) has no picture input "${target.input}"; ` +
          `inputs that take a picture here: ${pictureInputs.join(", ") || "none (add a LoadImage or LoadMask node)"}`,
      );
    }
  }
  return problems;
}

/**
 * The workflow one item runs: each target input set to the item's file, and each literal
 * `filename_prefix` (SaveImage's) followed by the item's name, so out/inpaint_cat_….png says which
 * picture it came from. The document is copied, not changed.
 */
export function workflowForItem(
  workflow: unknown,
  targets: readonly BatchTarget[],
  item: { readonly stem: string; readonly files: Readonly<Record<string, string>> },
  registry: NodeRegistry,
): unknown {
  const document = structuredClone(workflow) as { nodes: { id: string; type: string; inputs?: Record<string, unknown> }[] };
  for (const target of targets) {
    const node = document.nodes.find((n) => n.id === target.nodeId)!;
    node.inputs = { ...node.inputs, [target.input]: item.files[target.key] };
  }
  for (const node of document.nodes) {
    const spec = registry.get(node.type)?.inputs.filename_prefix;
    const prefix = node.inputs?.filename_prefix ?? spec?.default;
    if (spec && typeof prefix === "string") node.inputs = { ...node.inputs, filename_prefix: `${prefix}_${item.stem}` };
  }
  return document;
}

function workflowNodes(workflow: unknown): { id: string; type: string }[] {
  const nodes = (workflow as { nodes?: unknown } | null)?.nodes;
  if (!Array.isArray(nodes)) return [];
  return nodes.filter((n): n is { id: string; type: string } => typeof n?.id === "string" && typeof n?.type === "string");
}
