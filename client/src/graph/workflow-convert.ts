/**
 * The one bridge between LiteGraph's serialisation (what `LGraph.serialize()` gives and
 * `LGraph.configure()` takes) and Maskflow's workflow document, both ways and without loss:
 * node ids, literal inputs (widget values), links `[nodeId, outputName]`, ui (pos, size, title,
 * colours, collapsed) and groups and the viewport in the document's `ui`.
 *
 * What the canvas cannot show is kept, not dropped: a node of a type the server does not know
 * keeps its whole document node in its properties, and an input the graph cannot draw (a link to a
 * missing node, a literal on a link-only input, an input the schema does not declare) is held in the
 * node's properties and written back unchanged, so the server can still point at the problem.
 *
 * Pure data in, pure data out: no DOM, no LiteGraph runtime, so it is unit-tested under Node.
 */
import type { NodeSchema } from "../../../nodes/registry.ts";
import type { WorkflowDocument, WorkflowInputValue, WorkflowNode } from "../../../server/workflow/workflow-document.ts";
import { hasWidget } from "./socket-types.ts";

/** The part of LiteGraph's serialised node that the converter reads and writes. */
export interface LiteNodeData {
  id: number | string;
  type: string;
  pos: [number, number];
  size?: [number, number];
  flags: { collapsed?: boolean; [key: string]: unknown };
  order: number;
  mode: number;
  title?: string;
  color?: string;
  bgcolor?: string;
  inputs?: Array<{ name: string; type: string; link: number | null; widget?: { name: string }; label?: string }>;
  outputs?: Array<{ name: string; type: string; links: number[] | null }>;
  properties?: Record<string, unknown>;
  widgets_values?: unknown[];
}

/** [link id, origin node, origin slot, target node, target slot, type]: LiteGraph 0.4's link array. */
export type LiteLinkData = [number, number | string, number, number | string, number, string];

export interface LiteGroupData {
  id?: number;
  title: string;
  bounding: number[];
  color?: string;
  font_size?: number;
  flags?: Record<string, unknown>;
}

export interface LiteGraphData {
  last_node_id: number;
  last_link_id: number;
  nodes: LiteNodeData[];
  links: LiteLinkData[];
  groups: LiteGroupData[];
  config?: Record<string, unknown>;
  extra?: Record<string, unknown>;
  version: number;
}

/** Property keys the converter owns on a LiteGraph node. */
export const DOCUMENT_NODE_PROPERTY = "maskflow_document_node";
export const HELD_INPUTS_PROPERTY = "maskflow_held_inputs";
/** Widget inputs the document left out (the widget shows the default); written back only once changed. */
const ABSENT_INPUTS_PROPERTY = "maskflow_absent_inputs";
const UI_EXTRA_PROPERTY = "maskflow_ui_extra";
const OWN_PROPERTIES = new Set([DOCUMENT_NODE_PROPERTY, HELD_INPUTS_PROPERTY, UI_EXTRA_PROPERTY, ABSENT_INPUTS_PROPERTY]);
/** Keys of a node's `ui` the converter maps to LiteGraph fields; any other key travels in UI_EXTRA_PROPERTY. */
const KNOWN_UI_KEYS = new Set(["pos", "size", "title", "color", "bgcolor", "collapsed", "mode", "properties"]);

type SchemaMap = ReadonlyMap<string, NodeSchema>;

export function schemaMap(schemas: readonly NodeSchema[] | SchemaMap): SchemaMap {
  if (!Array.isArray(schemas)) return schemas as SchemaMap;
  return new Map((schemas as readonly NodeSchema[]).map((schema) => [schema.type, schema]));
}

/** A document id that reads back the same as a number becomes a numeric LiteGraph id ("7" → 7); others stay strings. */
function toLiteId(id: string): number | string {
  return /^(0|[1-9][0-9]{0,14})$/.test(id) ? Number(id) : id;
}

/** The value widgets of a node in widgets_values order: inputs that show a widget, in schema order. */
export function widgetInputNames(schema: NodeSchema): string[] {
  return Object.entries(schema.inputs)
    .filter(([, spec]) => hasWidget(spec))
    .map(([name]) => name);
}

function isLinkValue(value: WorkflowInputValue | undefined): value is [string, string] {
  return Array.isArray(value);
}

export function documentToLiteGraph(document: WorkflowDocument, schemas: readonly NodeSchema[] | SchemaMap): LiteGraphData {
  const byType = schemaMap(schemas);
  const nodes: LiteNodeData[] = [];
  const links: LiteLinkData[] = [];
  const nodeById = new Map<string, { data: LiteNodeData; schema?: NodeSchema }>();
  let lastNodeId = 0;

  document.nodes.forEach((docNode, order) => {
    const schema = byType.get(docNode.type);
    const liteId = toLiteId(docNode.id);
    if (typeof liteId === "number") lastNodeId = Math.max(lastNodeId, liteId);
    const ui = docNode.ui ?? {};
    const properties: Record<string, unknown> = { ...((ui.properties as Record<string, unknown> | undefined) ?? {}) };
    const uiExtra = Object.fromEntries(Object.entries(ui).filter(([key]) => !KNOWN_UI_KEYS.has(key)));
    if (Object.keys(uiExtra).length) properties[UI_EXTRA_PROPERTY] = uiExtra;

    const data: LiteNodeData = {
      id: liteId,
      type: docNode.type,
      pos: ui.pos ? [ui.pos[0], ui.pos[1]] : [40 + (order % 4) * 320, 80 + Math.floor(order / 4) * 260],
      flags: ui.collapsed ? { collapsed: true } : {},
      order,
      mode: typeof ui.mode === "number" ? ui.mode : 0,
      properties,
    };
    if (ui.size) data.size = [ui.size[0], ui.size[1]];
    if (ui.title !== undefined) data.title = ui.title;
    if (ui.color !== undefined) data.color = ui.color;
    if (ui.bgcolor !== undefined) data.bgcolor = ui.bgcolor;

    if (!schema) {
      // LiteGraph shows an unknown type as an error placeholder; the document node rides along untouched.
      properties[DOCUMENT_NODE_PROPERTY] = structuredClone(docNode);
      data.inputs = [];
      data.outputs = [];
    } else {
      const held: Record<string, WorkflowInputValue> = {};
      data.inputs = Object.entries(schema.inputs).map(([name, spec]) => {
        const slot: NonNullable<LiteNodeData["inputs"]>[number] = { name, type: spec.type, link: null };
        if (hasWidget(spec)) slot.widget = { name };
        // As a node made in the editor shows it (node-types.ts): LiteGraph takes the slots from here on load.
        else if (spec.optional) slot.label = `${name} (optional)`;
        return slot;
      });
      data.outputs = Object.entries(schema.outputs).map(([name, spec]) => ({ name, type: spec.type, links: [] }));
      data.widgets_values = widgetInputNames(schema).map((name) => {
        const value = docNode.inputs[name];
        return value === undefined || isLinkValue(value) ? (schema.inputs[name].default ?? null) : value;
      });
      for (const [name, value] of Object.entries(docNode.inputs)) {
        const spec = schema.inputs[name];
        // Literals on link-only inputs and inputs the schema lacks cannot be shown: hold them.
        if (!spec || (!isLinkValue(value) && !hasWidget(spec))) held[name] = value;
      }
      if (Object.keys(held).length) properties[HELD_INPUTS_PROPERTY] = held;
      const absent = widgetInputNames(schema).filter((name) => docNode.inputs[name] === undefined);
      if (absent.length) properties[ABSENT_INPUTS_PROPERTY] = absent;
    }
    nodes.push(data);
    nodeById.set(docNode.id, { data, schema });
  });

  // Links second: every node must exist before an input can point at it.
  let lastLinkId = 0;
  for (const docNode of document.nodes) {
    const target = nodeById.get(docNode.id)!;
    if (!target.schema) continue;
    for (const [name, value] of Object.entries(docNode.inputs)) {
      if (!isLinkValue(value) || !target.schema.inputs[name]) continue;
      const source = nodeById.get(value[0]);
      const outputSlot = source?.data.outputs?.findIndex((output) => output.name === value[1]) ?? -1;
      const inputSlot = target.data.inputs!.findIndex((input) => input.name === name);
      if (!source || outputSlot < 0) {
        const held = (target.data.properties![HELD_INPUTS_PROPERTY] ??= {}) as Record<string, WorkflowInputValue>;
        held[name] = value;
        continue;
      }
      const id = ++lastLinkId;
      const output = source.data.outputs![outputSlot];
      links.push([id, source.data.id, outputSlot, target.data.id, inputSlot, output.type]);
      (output.links ??= []).push(id);
      target.data.inputs![inputSlot].link = id;
    }
  }

  const docUi = { ...(document.ui ?? {}) };
  const groups = Array.isArray(docUi.groups) ? (structuredClone(docUi.groups) as LiteGroupData[]) : [];
  const viewport = docUi.viewport as { scale: number; offset: [number, number] } | undefined;
  delete docUi.groups;
  delete docUi.viewport;
  const extra: Record<string, unknown> = {};
  if (viewport) extra.ds = structuredClone(viewport);
  if (Object.keys(docUi).length) extra.maskflow_ui = docUi;
  const meta: Record<string, string> = {};
  if (document.name !== undefined) meta.name = document.name;
  if (document.description !== undefined) meta.description = document.description;
  if (Object.keys(meta).length) extra.maskflow_meta = meta;

  return { last_node_id: lastNodeId, last_link_id: lastLinkId, nodes, links, groups, config: {}, extra, version: 0.4 };
}

export function liteGraphToDocument(graph: LiteGraphData, schemas: readonly NodeSchema[] | SchemaMap): WorkflowDocument {
  const byType = schemaMap(schemas);
  const nodeByLiteId = new Map(graph.nodes.map((node) => [String(node.id), node]));
  const linkById = new Map(graph.links.filter(Boolean).map((link) => [link[0], link]));
  const nodes: WorkflowNode[] = [];

  for (const node of graph.nodes) {
    const properties = node.properties ?? {};
    const stored = properties[DOCUMENT_NODE_PROPERTY] as WorkflowNode | undefined;
    const schema = byType.get(node.type);
    if (stored || !schema) {
      if (stored) nodes.push({ ...structuredClone(stored), ui: { ...stored.ui, ...nodeUi(node, undefined, stored.ui?.title) } });
      else nodes.push({ id: String(node.id), type: node.type, inputs: {}, ui: nodeUi(node, undefined, undefined) });
      continue;
    }
    const inputs: Record<string, WorkflowInputValue> = {};
    const held = (properties[HELD_INPUTS_PROPERTY] as Record<string, WorkflowInputValue> | undefined) ?? {};
    const widgetValues = node.widgets_values ?? [];
    const widgetNames = widgetInputNames(schema);
    const absent = new Set((properties[ABSENT_INPUTS_PROPERTY] as string[] | undefined) ?? []);
    const slotOf = new Map((node.inputs ?? []).map((slot) => [slot.name, slot]));
    for (const [name, spec] of Object.entries(schema.inputs)) {
      const slot = slotOf.get(name);
      const link = slot?.link != null ? linkById.get(slot.link) : undefined;
      const origin = link ? nodeByLiteId.get(String(link[1])) : undefined;
      const originOutput = link && origin ? (origin.outputs?.[link[2]]?.name ?? outputNameOf(origin, link[2], byType)) : undefined;
      if (link && origin && originOutput) {
        inputs[name] = [String(origin.id), originOutput];
      } else if (name in held) {
        inputs[name] = structuredClone(held[name]);
      } else if (hasWidget(spec)) {
        const index = widgetNames.indexOf(name);
        const value = widgetValues[index];
        const unchangedDefault = absent.has(name) && (value === (spec.default ?? null) || value === undefined);
        if (value !== undefined && !unchangedDefault) inputs[name] = literalFor(spec.type, value);
      }
    }
    for (const [name, value] of Object.entries(held)) {
      if (!(name in schema.inputs)) inputs[name] = structuredClone(value);
    }
    nodes.push({ id: String(node.id), type: node.type, inputs, ui: nodeUi(node, schema, undefined) });
  }

  const document: WorkflowDocument = { format: "maskflow-workflow", version: 1, nodes };
  const extra = graph.extra ?? {};
  const meta = extra.maskflow_meta as { name?: string; description?: string } | undefined;
  if (meta?.name !== undefined) document.name = meta.name;
  if (meta?.description !== undefined) document.description = meta.description;
  const ui: Record<string, unknown> = { ...((extra.maskflow_ui as Record<string, unknown> | undefined) ?? {}) };
  if (graph.groups?.length) ui.groups = graph.groups.map((group) => cleanGroup(group));
  const ds = extra.ds as { scale?: number; offset?: number[] } | undefined;
  if (ds && typeof ds.scale === "number" && Array.isArray(ds.offset)) ui.viewport = { scale: ds.scale, offset: [ds.offset[0], ds.offset[1]] };
  if (Object.keys(ui).length) document.ui = ui;
  return document;
}

function outputNameOf(node: LiteNodeData, slot: number, byType: SchemaMap): string | undefined {
  const schema = byType.get(node.type);
  return schema ? Object.keys(schema.outputs)[slot] : undefined;
}

/** INT widgets can be dragged to fractions and SEEDs above 2^53 travel as strings; give the executor what it checks for. */
function literalFor(type: string, value: unknown): WorkflowInputValue {
  if (type === "INT" && typeof value === "number") return Math.round(value);
  if (type === "SEED" && typeof value === "number") return Math.round(value);
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean" || value === null) return value;
  return String(value);
}

function cleanGroup(group: LiteGroupData): Record<string, unknown> {
  const out: Record<string, unknown> = { title: group.title, bounding: [...group.bounding] };
  if (group.id !== undefined) out.id = group.id;
  if (group.color !== undefined) out.color = group.color;
  if (group.font_size !== undefined) out.font_size = group.font_size;
  if (group.flags && Object.keys(group.flags).length) out.flags = { ...group.flags };
  return out;
}

function nodeUi(node: LiteNodeData, schema: NodeSchema | undefined, storedTitle: string | undefined): NonNullable<WorkflowNode["ui"]> {
  const properties = node.properties ?? {};
  const ui: Record<string, unknown> = { ...((properties[UI_EXTRA_PROPERTY] as Record<string, unknown> | undefined) ?? {}) };
  ui.pos = [round(node.pos[0]), round(node.pos[1])];
  if (node.size) ui.size = [round(node.size[0]), round(node.size[1])];
  const title = node.title ?? storedTitle;
  if (title !== undefined && title !== schema?.displayName) ui.title = title;
  if (node.color !== undefined) ui.color = node.color;
  if (node.bgcolor !== undefined) ui.bgcolor = node.bgcolor;
  if (node.flags?.collapsed) ui.collapsed = true;
  if (node.mode) ui.mode = node.mode;
  const own = Object.fromEntries(Object.entries(properties).filter(([key]) => !OWN_PROPERTIES.has(key)));
  if (Object.keys(own).length) ui.properties = own;
  return ui as NonNullable<WorkflowNode["ui"]>;
}

/** Positions come back from the canvas as float32; two decimals keep documents tidy and stable. */
function round(value: number): number {
  return Math.round(value * 100) / 100;
}
