/**
 * LiteGraph node classes built at start-up from GET /api/nodes, so a new server node needs no
 * client change. Each input with a widget gets the widget and a socket on it (a link overrides the
 * value); link-only inputs get a plain socket. Non-value widgets (seed control, upload and mask
 * buttons) come after the value widgets so LiteGraph's widgets_values stay aligned with the schema.
 */
import { LGraphCanvas, LGraphNode, LiteGraph, type IWidget } from "@comfyorg/litegraph";
import type { InputSpec } from "../../../nodes/node-definition.ts";
import type { NodeSchema } from "../api/maskflow-api.ts";
import { drawNodeView, imageAt, showInputImage, showMaskImage } from "./node-state.ts";
import { canConnect, hasWidget, SOCKET_COLOURS } from "./socket-types.ts";
import { addMultilineWidget } from "./multiline-widget.ts";
import { choicesWithCurrent } from "../editor/server-choices.ts";

/** What the node classes ask of the app (uploads, the mask painter, the image viewer). */
export interface NodeActions {
  uploadInto(node: LGraphNode, widgetName: string): void;
  openMaskEditor(node: LGraphNode): void;
  openImage(url: string): void;
  /** File names a LoadImage combo offers: uploads this browser knows of plus what graphs use. */
  imageChoices(): string[];
  /** What a Load Checkpoint ("checkpoint") or Load LoRA ("lora") combo offers, as last fetched from the server. */
  serverChoices(kind: ServerFileWidget): string[];
  /** Fetches that list again (a combo opening asks first, so a file added meanwhile is offered). */
  refreshServerChoices(kind: ServerFileWidget): Promise<void>;
  /** A widget's value changed through the canvas (what the server will be asked to do may have changed). */
  widgetChanged(node: LGraphNode, name: string): void;
}

/** Widgets whose values are names of files in the server's models folder. */
export type ServerFileWidget = "checkpoint" | "lora";

export const SEED_CONTROLS = ["fixed", "randomize", "increment", "decrement"] as const;
export type SeedControl = (typeof SEED_CONTROLS)[number];
export const seedControlProperty = (name: string) => `seed_control_${name}`;

const IMAGE_WIDGETS = new Set(["image", "mask"]);
/** How long a Load Checkpoint combo waits for the fresh list before it opens with the last one. */
const CHECKPOINT_REFRESH_WAIT_MS = 1500;
/** LiteGraph warns about widgets without a callback; the value is read from the widget when needed. */
const keepValue = () => {};

export function schemaOf(node: LGraphNode): NodeSchema | undefined {
  return (node.constructor as { maskflowSchema?: NodeSchema }).maskflowSchema;
}

export function isImageLoader(node: LGraphNode): boolean {
  const schema = schemaOf(node);
  return !!schema && Object.values(schema.inputs).some((spec) => IMAGE_WIDGETS.has(spec.widget ?? ""));
}

export function registerSchemaNodes(schemas: readonly NodeSchema[], actions: NodeActions): void {
  LiteGraph.isValidConnection = (outputType, inputType) => {
    if (!outputType || !inputType || outputType === "*" || inputType === "*") return true;
    return canConnect(String(outputType), String(inputType));
  };
  for (const [type, colour] of Object.entries(SOCKET_COLOURS)) {
    LGraphCanvas.link_type_colors[type] = colour;
  }
  for (const schema of schemas) {
    LiteGraph.registerNodeType(schema.type, createNodeClass(schema, actions));
    (LiteGraph.registered_node_types[schema.type] as unknown as { category: string }).category = schema.category;
  }
}

function precisionOf(step: number | undefined, type: string): number {
  if (type === "INT" || type === "SEED") return 0;
  if (!step) return 2;
  const decimals = String(step).split(".")[1]?.length ?? 0;
  return Math.min(6, Math.max(decimals, 1));
}

function createNodeClass(schema: NodeSchema, actions: NodeActions): typeof LGraphNode {
  class SchemaNode extends LGraphNode {
    static override title = schema.displayName;
    static maskflowSchema = schema;
    static description = schema.description;

    constructor(title?: string) {
      super(title ?? schema.displayName);
      this.serialize_widgets = true;
      const extras: Array<() => void> = [];
      for (const [name, spec] of Object.entries(schema.inputs)) {
        if (hasWidget(spec)) {
          this.addInput(name, spec.type, { widget: { name } });
          addValueWidget(this, name, spec, extras);
        } else {
          const slot = this.addInput(name, spec.type);
          if (spec.optional) slot.label = `${name} (optional)`;
        }
      }
      for (const [name, spec] of Object.entries(schema.outputs)) this.addOutput(name, spec.type);
      for (const addExtra of extras) addExtra();
      this.size = this.computeSize();
      // A checkpoint's file name is long ("v1-5-pruned-emaonly.safetensors"): room for it and for a build's progress label.
      const hasCheckpointWidget = Object.values(schema.inputs).some((spec) => spec.widget === "checkpoint" || spec.widget === "lora");
      this.size[0] = Math.max(this.size[0], hasCheckpointWidget ? 340 : 260);
      this.setSize([this.size[0], this.size[1]]);
      // LiteGraph assigns onMouseDown per instance (for title buttons), so wrap it rather than override.
      const titleButtons = this.onMouseDown;
      this.onMouseDown = (event, pos, canvas) => {
        const url = imageAt(this, pos[0], pos[1]);
        if (url && event.button === 0) {
          actions.openImage(url);
          return true;
        }
        return titleButtons?.call(this, event, pos, canvas) ?? false;
      };
    }

    // A pasted or Alt-dragged copy is configured before it joins the graph, and nothing else tells
    // it to show its picture or its saved seed mode (loadDocument refreshes the nodes it loads).
    override onAdded(): void {
      refreshNodeAfterLoad(this);
    }

    override onDrawForeground(ctx: CanvasRenderingContext2D): void {
      drawNodeView(this, ctx);
    }

    override onWidgetChanged(name: string): void {
      actions.widgetChanged(this, name);
    }
  }

  function addValueWidget(node: LGraphNode, name: string, spec: InputSpec, extras: Array<() => void>): void {
    const value = spec.default;
    const kind = spec.widget;
    let widget: IWidget | undefined;
    if (kind === "combo") {
      // A LoadMask's channel decides which mask its picture holds: its thumbnail follows.
      const onChange = schema.type === "LoadMask" ? () => showNodePicture(node) : keepValue;
      widget = node.addWidget("combo", name, String(value ?? spec.options?.[0] ?? ""), onChange, { values: [...(spec.options ?? [])] }) as IWidget;
    } else if (kind === "checkpoint" || kind === "lora") {
      widget = addServerFileWidget(node, name, kind, String(value ?? ""));
    } else if (kind === "toggle") {
      widget = node.addWidget("toggle", name, Boolean(value), keepValue, { on: "true", off: "false" }) as IWidget;
    } else if (kind === "multiline") {
      addMultilineWidget(node, name, String(value ?? ""));
    } else if (kind === "text") {
      widget = node.addWidget("text", name, String(value ?? ""), keepValue, {}) as IWidget;
    } else if (kind && IMAGE_WIDGETS.has(kind)) {
      const combo = node.addWidget("combo", name, String(value ?? ""), () => showNodePicture(node), {
        values: (() => {
          const current = String(combo.value ?? "");
          const choices = actions.imageChoices();
          return current && !choices.includes(current) ? [current, ...choices] : choices;
        }) as unknown as string[],
      }) as IWidget;
      widget = combo;
      extras.push(() => {
        const upload = node.addWidget("button", `upload ${kind}`, undefined, () => actions.uploadInto(node, name), {}) as IWidget;
        upload.serialize = false;
        if (kind === "image" || schema.type === "LoadMask") {
          const edit = node.addWidget("button", "paint mask", undefined, () => actions.openMaskEditor(node), {}) as IWidget;
          edit.serialize = false;
        }
      });
    } else if (kind === "seed") {
      widget = node.addWidget("number", name, Number(value ?? 0), keepValue, {
        min: -1,
        max: Number.MAX_SAFE_INTEGER,
        step2: 1,
        step: 10,
        precision: 0,
      }) as IWidget;
      const property = seedControlProperty(name);
      node.properties[property] ??= "fixed";
      extras.push(() => {
        const control = node.addWidget("combo", `${name} on queue`, String(node.properties[property]), (choice: string) => {
          node.properties[property] = choice;
        }, { values: [...SEED_CONTROLS] }) as IWidget;
        control.serialize = false;
      });
    } else {
      // number / slider: LiteGraph's legacy `step` is ten times the real step (step2).
      const step = spec.step ?? (spec.type === "INT" ? 1 : 0.01);
      const options = { min: spec.min, max: spec.max, step2: step, step: step * 10, precision: precisionOf(spec.step, spec.type) };
      const useSlider = kind === "slider" && spec.min !== undefined && spec.max !== undefined;
      widget = node.addWidget(useSlider ? "slider" : "number", name, Number(value ?? spec.min ?? 0), keepValue, options) as IWidget;
    }
    if (widget && spec.description) widget.tooltip = spec.description;
  }

  /**
   * A combo of the server's checkpoints or LoRAs (GET /api/models/checkpoints, /loras), in its order; a name it does
   * not list (a workflow from elsewhere) stays in the list. Opening it asks the server again first. A new node starts
   * on the first one, as ComfyUI's loaders do.
   */
  function addServerFileWidget(node: LGraphNode, name: string, kind: ServerFileWidget, value: string): IWidget {
    const combo = node.addWidget("combo", name, value || (actions.serverChoices(kind)[0] ?? ""), keepValue, {
      values: (() => choicesWithCurrent(actions.serverChoices(kind), String(combo.value ?? ""))) as unknown as string[],
    }) as IWidget;
    const concrete = combo as unknown as { onClick(options: unknown): void };
    const openMenu = concrete.onClick.bind(combo);
    concrete.onClick = (options) => {
      const waited = new Promise((resolve) => setTimeout(resolve, CHECKPOINT_REFRESH_WAIT_MS));
      void Promise.race([actions.refreshServerChoices(kind), waited]).then(() => openMenu(options));
    };
    return combo;
  }

  return SchemaNode;
}

/**
 * An image loader shows the picture its file widget names; a LoadMask shows the mask it reads from
 * that picture (its channel), so the user sees what will be repainted.
 */
export function showNodePicture(node: LGraphNode): void {
  const schema = schemaOf(node);
  const fileInput = schema && Object.entries(schema.inputs).find(([, spec]) => IMAGE_WIDGETS.has(spec.widget ?? ""))?.[0];
  if (!fileInput) return;
  const file = String(widgetValue(node, fileInput) ?? "");
  if (schema.type === "LoadMask") showMaskImage(node, file, String(widgetValue(node, "channel") ?? ""));
  else showInputImage(node, file);
}

/** After a graph loads, image loaders show their picture and seed controls show their saved mode. */
export function refreshNodeAfterLoad(node: LGraphNode): void {
  const schema = schemaOf(node);
  if (!schema) return;
  if (isImageLoader(node)) showNodePicture(node);
  for (const [name, spec] of Object.entries(schema.inputs)) {
    if (spec.widget === "seed") {
      const control = node.widgets?.find((w) => w.name === `${name} on queue`);
      if (control) control.value = String(node.properties[seedControlProperty(name)] ?? "fixed");
    }
  }
}

/** Applies each seed widget's control before a run, so the seed shown is the seed used. */
export function applySeedControls(nodes: readonly LGraphNode[]): void {
  for (const node of nodes) {
    const schema = schemaOf(node);
    if (!schema) continue;
    for (const [name, spec] of Object.entries(schema.inputs)) {
      if (spec.widget !== "seed") continue;
      const widget = node.widgets?.find((w) => w.name === name);
      if (!widget || node.inputs.find((slot) => slot.name === name)?.link != null) continue;
      const control = node.properties[seedControlProperty(name)] as SeedControl | undefined;
      const current = Number(widget.value ?? 0);
      if (control === "randomize") widget.value = Math.floor(Math.random() * 2 ** 32) * 2 ** 16 + Math.floor(Math.random() * 2 ** 16);
      else if (control === "increment") widget.value = Math.min(Number.MAX_SAFE_INTEGER, current + 1);
      else if (control === "decrement") widget.value = Math.max(0, current - 1);
    }
    node.setDirtyCanvas(true, false);
  }
}

export function widgetValue(node: LGraphNode, name: string): unknown {
  return node.widgets?.find((widget) => widget.name === name)?.value;
}

export function setWidgetValue(node: LGraphNode, name: string, value: string | number | boolean): void {
  const widget = node.widgets?.find((w) => w.name === name);
  if (!widget) return;
  widget.value = value;
  widget.callback?.(value);
  node.setDirtyCanvas(true, true);
}
