/**
 * Workflows from before the MODEL socket hold Inpaint's `model` as a text literal naming a model folder. The
 * server still runs them, but the editor has no widget for it, so on opening such a workflow the name becomes
 * what a user would wire today: a Load Checkpoint node naming it, linked to that input, placed left of the node
 * without covering another. An empty text meant "the server's model": the input is simply left unlinked.
 *
 * Pure data in, pure data out (unit-tested under Node); the editor places the new node again with the sizes
 * LiteGraph gave the nodes (placeLeftOf), since a document need not record them.
 */
import type { NodeSchema } from "../../../nodes/registry.ts";
import type { WorkflowDocument, WorkflowNode } from "../../../server/workflow/workflow-document.ts";
import { hasWidget } from "./socket-types.ts";

/** A node's extent on the canvas, title bar included: [x, y, width, height]. */
export type Box = readonly [number, number, number, number];

/** LiteGraph's title bar, drawn above a node's position. */
export const TITLE_HEIGHT = 30;
/** Space kept between the new node and the node it feeds, and round every other node. */
const GAP = 40;
const MARGIN = 20;
const STEP_X = 20;
const STEP_Y = 10;

export interface AddedLoader {
  /** The new Load Checkpoint node's id. */
  readonly loaderId: string;
  /** The node whose MODEL input it feeds, and that input. */
  readonly targetId: string;
  readonly input: string;
  readonly checkpoint: string;
}

export interface ModelLiteralUpgrade {
  readonly document: WorkflowDocument;
  /** The Load Checkpoint nodes added, in order; empty when nothing changed. */
  readonly added: readonly AddedLoader[];
  /** Whether anything changed (a loader added, or an empty text dropped). */
  readonly changed: boolean;
}

/** The node type that turns a model name into a MODEL: one with a "checkpoint" widget and a MODEL output. */
export function checkpointLoaderOf(schemas: ReadonlyMap<string, NodeSchema>): { type: string; input: string; output: string; schema: NodeSchema } | undefined {
  const preferred = schemas.get("CheckpointLoader");
  const candidates = preferred ? [preferred, ...schemas.values()] : [...schemas.values()];
  for (const schema of candidates) {
    const input = Object.entries(schema.inputs).find(([, spec]) => spec.widget === "checkpoint")?.[0];
    const output = Object.entries(schema.outputs).find(([, spec]) => spec.type === "MODEL")?.[0];
    if (input && output) return { type: schema.type, input, output, schema };
  }
  return undefined;
}

/** Where the converter puts a node whose document gives no position (documentToLiteGraph's grid). */
export function defaultPosition(order: number): [number, number] {
  return [40 + (order % 4) * 320, 80 + Math.floor(order / 4) * 260];
}

/** A node's size as LiteGraph will roughly make it when the document does not say: for placing before the canvas knows. */
export function estimatedSize(schema: NodeSchema | undefined): [number, number] {
  if (!schema) return [260, 80];
  const inputs = Object.values(schema.inputs);
  const widgets = inputs.filter((spec) => hasWidget(spec)).length;
  const sockets = Math.max(inputs.length - widgets, Object.keys(schema.outputs).length);
  const wide = inputs.some((spec) => spec.widget === "checkpoint");
  return [wide ? 340 : 260, Math.max(40, sockets * 20 + widgets * 24 + 16)];
}

function overlaps(a: Box, b: Box): boolean {
  return a[0] < b[0] + b[2] + MARGIN && b[0] < a[0] + a[2] + MARGIN && a[1] < b[1] + b[3] + MARGIN && b[1] < a[1] + a[3] + MARGIN;
}

/**
 * The position (LiteGraph's `pos`: below the title bar) for a node of `size` left of `target`, its right edge a gap
 * from the target's left one, as level with it as the other nodes allow; further left or up or down only as far as
 * needed to cover none of them. The nearest free spot wins (sideways and vertical distance counted alike).
 */
export function placeLeftOf(target: Box, size: readonly [number, number], others: readonly Box[]): [number, number] {
  const width = size[0];
  const height = size[1] + TITLE_HEIGHT;
  const startX = target[0] - GAP - width;
  const free = (x: number, y: number) => others.every((box) => !overlaps([x, y, width, height], box));
  if (!others.length) return [startX, target[1] + TITLE_HEIGHT];
  // Far enough left, every spot is free: the search never needs to go past there, nor above or below every node.
  const leftmost = Math.min(...others.map((box) => box[0]));
  const lastX = Math.min(startX, leftmost - MARGIN - width - 1);
  const top = Math.min(...others.map((box) => box[1])) - height - MARGIN - 1;
  const bottom = Math.max(...others.map((box) => box[1] + box[3])) + MARGIN + 1;
  const reach = Math.max(target[1] - top, bottom - target[1]) + STEP_Y;
  let best: { x: number; y: number; cost: number } | undefined;
  for (let x = startX; ; x = Math.max(lastX, x - STEP_X)) {
    const dx = startX - x;
    if (best && dx >= best.cost) break;
    for (let d = 0; d <= reach; d += STEP_Y) {
      if (best && dx + d >= best.cost) break;
      const y = [target[1] + d, target[1] - d].find((candidate) => free(x, candidate));
      if (y !== undefined) {
        best = { x, y, cost: dx + d };
        break;
      }
    }
    if (x === lastX) break;
  }
  const spot = best ?? { x: lastX, y: target[1] };
  return [spot.x, spot.y + TITLE_HEIGHT];
}

/** The smallest whole-number id above every numeric one the document uses (LiteGraph ids stay numbers). */
function nextIds(nodes: readonly WorkflowNode[]): () => string {
  const taken = new Set(nodes.map((node) => node.id));
  let next = Math.max(0, ...nodes.map((node) => (/^(0|[1-9][0-9]{0,14})$/.test(node.id) ? Number(node.id) : 0))) + 1;
  return () => {
    while (taken.has(String(next))) next++;
    taken.add(String(next));
    return String(next++);
  };
}

/** Replaces model-name texts on MODEL inputs by Load Checkpoint nodes wired to them; drops empty ones. */
export function upgradeModelLiterals(document: WorkflowDocument, schemas: ReadonlyMap<string, NodeSchema>): ModelLiteralUpgrade {
  const loader = checkpointLoaderOf(schemas);
  const literalInputs = (node: WorkflowNode) => {
    const schema = schemas.get(node.type);
    if (!schema) return [];
    return Object.entries(schema.inputs)
      .filter(([name, spec]) => spec.type === "MODEL" && !hasWidget(spec) && typeof node.inputs?.[name] === "string")
      .map(([name]) => name);
  };
  if (!document.nodes.some((node) => literalInputs(node).length)) return { document, added: [], changed: false };

  const nodes = structuredClone(document.nodes);
  const newId = nextIds(nodes);
  const boxes = new Map<string, Box>();
  nodes.forEach((node, order) => {
    const pos = node.ui?.pos ?? defaultPosition(order);
    const size = node.ui?.size ?? estimatedSize(schemas.get(node.type));
    boxes.set(node.id, [pos[0], pos[1] - TITLE_HEIGHT, size[0], size[1] + TITLE_HEIGHT]);
  });
  const added: AddedLoader[] = [];
  let changed = false;
  for (const node of [...nodes]) {
    for (const input of literalInputs(node)) {
      const name = node.inputs[input] as string;
      if (name === "") {
        delete node.inputs[input];
        changed = true;
        continue;
      }
      // An older server without a loader: the converter holds the text and writes it back unchanged.
      if (!loader) continue;
      const loaderId = newId();
      const size = estimatedSize(loader.schema);
      const others = [...boxes].filter(([id]) => id !== node.id).map(([, box]) => box);
      const pos = placeLeftOf(boxes.get(node.id)!, size, others);
      // No size: LiteGraph sizes the node to its widgets (the editor then places it again with that size).
      nodes.push({ id: loaderId, type: loader.type, inputs: { [loader.input]: name }, ui: { pos } });
      boxes.set(loaderId, [pos[0], pos[1] - TITLE_HEIGHT, size[0], size[1] + TITLE_HEIGHT]);
      node.inputs[input] = [loaderId, loader.output];
      added.push({ loaderId, targetId: node.id, input, checkpoint: name });
      changed = true;
    }
  }
  return { document: { ...document, nodes }, added, changed };
}
