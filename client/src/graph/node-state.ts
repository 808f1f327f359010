/**
 * What a node shows beyond its widgets: the input picture, output pictures, a progress bar with
 * step/total, the live step preview, and an error with its message. Kept off the node's
 * properties so none of it is saved with the workflow.
 */
import type { LGraphNode } from "@comfyorg/litegraph";
import type { ImageRef } from "../api/maskflow-api.ts";
import { viewUrl } from "../api/maskflow-api.ts";
import { maskPreview } from "./mask-preview.ts";
import { wrapText } from "./wrap-text.ts";

/** A picture on a node, with its full-size URL for the viewer. */
export interface NodePicture {
  url: string;
  image: HTMLImageElement;
  /** A mask is drawn as the grey channel the server reads, once its file decoded; pictures are drawn as they are. */
  mask?: { preview?: HTMLCanvasElement; caption?: string };
}

export interface NodeView {
  /** Pictures to show (outputs, or the loaded input). */
  images: NodePicture[];
  progress?: { value: number; max: number; label?: string };
  preview?: HTMLImageElement;
  running: boolean;
  errors: string[];
  /** Known before running: this node will fail as the graph stands (e.g. the server has no local model). */
  warnings: string[];
  /** Counts requests for the node's own picture, so a slow decode of an older choice does not replace a newer one. */
  pictureRequests: number;
  /** Where the pictures were drawn last, in node coordinates, so a click can open the right one. */
  imageRects: Array<{ rect: [number, number, number, number]; url: string }>;
  /** Counts resetRunState calls, so a preview decoded after its run ended can tell. */
  runs: number;
  /** Numbers the preview frames as they arrive, and the one shown: frames can finish decoding out of order. */
  previewsReceived: number;
  previewShown: number;
}

const views = new WeakMap<LGraphNode, NodeView>();

export function viewOf(node: LGraphNode): NodeView {
  let view = views.get(node);
  if (!view) {
    view = { images: [], running: false, errors: [], warnings: [], pictureRequests: 0, imageRects: [], runs: 0, previewsReceived: 0, previewShown: 0 };
    views.set(node, view);
  }
  return view;
}

function loadImage(url: string, node: LGraphNode): HTMLImageElement {
  const image = new Image();
  image.onload = () => node.setDirtyCanvas(true, true);
  image.onerror = () => node.setDirtyCanvas(true, true);
  image.src = url;
  return image;
}

export function showImages(node: LGraphNode, refs: readonly ImageRef[]): void {
  const view = viewOf(node);
  view.images = refs.map((ref) => {
    const url = `${viewUrl(ref)}&t=${Date.now()}`;
    return { url, image: loadImage(url, node) };
  });
  ensureRoomForImages(node);
  node.setDirtyCanvas(true, true);
}

export function showPreview(node: LGraphNode, jpeg: Blob): void {
  const view = viewOf(node);
  const url = URL.createObjectURL(jpeg);
  const run = view.runs;
  const frame = ++view.previewsReceived;
  const image = new Image();
  image.onerror = () => URL.revokeObjectURL(url);
  image.onload = () => {
    // Decoding is asynchronous: a frame that finishes decoding after the node's run ended would stick
    // on it, and one that finishes after a newer frame would show an older step.
    if (view.runs !== run || frame < view.previewShown) {
      URL.revokeObjectURL(url);
      return;
    }
    if (view.preview) URL.revokeObjectURL(view.preview.src);
    view.preview = image;
    view.previewShown = frame;
    ensureRoomForImages(node);
    node.setDirtyCanvas(true, true);
  };
  image.src = url;
}

export function setErrors(node: LGraphNode, errors: string[]): void {
  const view = viewOf(node);
  view.errors = errors;
  node.has_errors = errors.length > 0;
  node.setDirtyCanvas(true, true);
}

export function setWarnings(node: LGraphNode, warnings: string[]): void {
  const view = viewOf(node);
  if (view.warnings.join("\n") === warnings.join("\n")) return;
  view.warnings = warnings;
  node.setDirtyCanvas(true, true);
}

/** What is drawn for a picture, once it can be: the decoded picture, or for a mask its grey channel. */
export function drawablePicture(picture: NodePicture): CanvasImageSource | undefined {
  if (!picture.image.complete || picture.image.naturalWidth === 0) return undefined;
  return picture.mask ? picture.mask.preview : picture.image;
}

export function resetRunState(node: LGraphNode): void {
  const view = viewOf(node);
  view.runs++;
  view.running = false;
  view.progress = undefined;
  if (view.preview) URL.revokeObjectURL(view.preview.src);
  view.preview = undefined;
  node.setDirtyCanvas(true, true);
}

/** A node that has pictures to show grows to a useful size once, like ComfyUI's image nodes. */
function ensureRoomForImages(node: LGraphNode): void {
  const minHeight = widgetsBottom(node) + 200;
  if (node.size[1] < minHeight || node.size[0] < 240) node.setSize([Math.max(node.size[0], 240), Math.max(node.size[1], minHeight)]);
}

function widgetsBottom(node: LGraphNode): number {
  let bottom = (Math.max(node.inputs?.filter((slot) => !slot.widget).length ?? 0, node.outputs?.length ?? 0) + 0.5) * 20;
  // A node added a moment ago may not be laid out yet (every widget y = 0): stack the heights as a floor.
  let stacked = bottom;
  for (const widget of node.widgets ?? []) {
    if (widget.hidden) continue;
    const height = widget.computedHeight ?? widget.computeSize?.(node.size[0])[1] ?? 24;
    bottom = Math.max(bottom, (widget.y ?? 0) + height);
    stacked += height;
  }
  return Math.max(bottom, stacked) + 4;
}

/** Fits w×h into the box keeping its aspect, centred. */
function fit(w: number, h: number, box: [number, number, number, number]): [number, number, number, number] {
  const scale = Math.min(box[2] / w, box[3] / h);
  const width = w * scale;
  const height = h * scale;
  return [box[0] + (box[2] - width) / 2, box[1] + (box[3] - height) / 2, width, height];
}

/** Draws pictures, progress and errors over a node; called from the node's onDrawForeground. */
export function drawNodeView(node: LGraphNode, ctx: CanvasRenderingContext2D): void {
  const view = viewOf(node);
  if (node.flags.collapsed) return;
  const [width, height] = node.size;
  view.imageRects = [];
  const top = widgetsBottom(node);
  const area: [number, number, number, number] = [6, top, width - 12, height - top - 6];
  const pictures: NodePicture[] = view.preview ? [{ url: "", image: view.preview }] : view.images;
  const ready = pictures.filter((picture) => drawablePicture(picture) !== undefined);
  if (ready.length && area[3] > 24) {
    const columns = Math.ceil(Math.sqrt(ready.length));
    const rows = Math.ceil(ready.length / columns);
    const cellW = area[2] / columns;
    const cellH = area[3] / rows;
    ready.forEach((picture, i) => {
      const cell: [number, number, number, number] = [area[0] + (i % columns) * cellW, area[1] + Math.floor(i / columns) * cellH, cellW - 2, cellH - 2];
      const rect = fit(picture.image.naturalWidth, picture.image.naturalHeight, cell);
      ctx.drawImage(drawablePicture(picture)!, rect[0], rect[1], rect[2], rect[3]);
      if (picture.mask) {
        // A black mask on a dark node would have no edge: outline the picture's extent.
        ctx.strokeStyle = "rgba(255,255,255,0.35)";
        ctx.lineWidth = 1;
        ctx.strokeRect(rect[0] - 0.5, rect[1] - 0.5, rect[2] + 1, rect[3] + 1);
      }
      if (picture.url) view.imageRects.push({ rect, url: picture.url });
    });
    if (ready.length === 1 && !view.preview) {
      ctx.fillStyle = "rgba(255,255,255,0.55)";
      ctx.font = "11px sans-serif";
      ctx.textAlign = "center";
      ctx.fillText(ready[0].mask?.caption ?? `${ready[0].image.naturalWidth} × ${ready[0].image.naturalHeight}`, width / 2, height - 8);
    }
  }

  if (view.running) {
    ctx.strokeStyle = "#4caf50";
    ctx.lineWidth = 3;
    ctx.strokeRect(-3, -LiteGraphTitleHeight - 3, width + 6, height + LiteGraphTitleHeight + 6);
  }
  if (view.progress && view.progress.max > 0) {
    // In the title bar, so the bar never hides the first input's socket and label.
    const fraction = Math.min(1, view.progress.value / view.progress.max);
    const barHeight = 5;
    ctx.fillStyle = "rgba(0,0,0,0.5)";
    ctx.fillRect(0, -barHeight, width, barHeight);
    ctx.fillStyle = "#4caf50";
    ctx.fillRect(0, -barHeight, width * fraction, barHeight);
    ctx.fillStyle = "#fff";
    ctx.textAlign = "right";
    ctx.fillText(progressText(node, ctx, view.progress, width), width - 8, -LiteGraphTitleHeight / 2 + 2);
  }
  // Clear of the red frame LiteGraph draws round a node with errors.
  let labelTop = height + 16;
  if (view.errors.length) labelTop = drawLabel(ctx, view.errors, "rgba(120,0,0,0.92)", "#fff", width, labelTop) + 4;
  if (view.warnings.length) drawLabel(ctx, view.warnings, "rgba(122,84,0,0.94)", "#fff", width, labelTop);
}

/**
 * The progress text in the title bar, right of the title and clear of it: "label value / max" ("loading model 2 / 4"),
 * or the label alone when it carries its own percentage (a checkpoint build's "building unet 12 %", whose counts are
 * bytes); in a smaller font, or shortened with "…", when the node is too narrow. Leaves ctx.font set for drawing it.
 */
function progressText(node: LGraphNode, ctx: CanvasRenderingContext2D, progress: NonNullable<NodeView["progress"]>, width: number): string {
  const count = `${progress.value} / ${progress.max}`;
  const label = progress.label?.trim();
  const full = !label ? count : /%$/.test(label) ? label : `${label} ${count}`;
  ctx.font = `${LiteGraphTitleFontSize}px Arial`;
  const titleRight = LiteGraphTitleHeight + ctx.measureText(node.title ?? "").width + 12;
  const room = width - 8 - titleRight;
  // A little smaller before anything is left out.
  for (const size of [11, 10, 9]) {
    ctx.font = `bold ${size}px sans-serif`;
    if (ctx.measureText(full).width <= room) return full;
  }
  if (label && ctx.measureText(label).width <= room) return label;
  let text = full;
  while (text.length > 1 && ctx.measureText(`${text}…`).width > room) text = text.slice(0, -1);
  return `${text.trimEnd()}…`;
}

/**
 * Messages in a box under the node, wrapped to the node's width (a long path is broken too) so the
 * box is behind every line; returns the bottom of the box.
 */
function drawLabel(ctx: CanvasRenderingContext2D, messages: readonly string[], background: string, colour: string, width: number, top: number): number {
  ctx.font = "12px sans-serif";
  ctx.textAlign = "left";
  const padding = 6;
  const lines = messages.flatMap((message) => wrapText(ctx, message, width - 2 * padding, MAX_LABEL_LINES)).slice(0, MAX_LABEL_LINES);
  const boxHeight = lines.length * 15 + 8;
  ctx.fillStyle = background;
  ctx.fillRect(0, top, width, boxHeight);
  ctx.fillStyle = colour;
  lines.forEach((line, i) => ctx.fillText(line, padding, top + 14 + i * 15));
  return top + boxHeight;
}

const LiteGraphTitleHeight = 30;
/** LiteGraph's title font size (NODE_TEXT_SIZE, Arial). */
const LiteGraphTitleFontSize = 14;
const MAX_LABEL_LINES = 12;

/** The full-size URL of the picture under a point in node coordinates, if any. */
export function imageAt(node: LGraphNode, x: number, y: number): string | undefined {
  return viewOf(node).imageRects.find(({ rect }) => x >= rect[0] && y >= rect[1] && x <= rect[0] + rect[2] && y <= rect[1] + rect[3])?.url;
}

export function showInputImage(node: LGraphNode, filename: string): void {
  const view = viewOf(node);
  view.pictureRequests++;
  if (!filename) {
    view.images = [];
  } else {
    const url = `${viewUrl({ filename, type: "input" })}&t=${Date.now()}`;
    view.images = [{ url, image: loadImage(url, node) }];
    ensureRoomForImages(node);
  }
  node.setDirtyCanvas(true, true);
}

/** A LoadMask shows the mask it will give (white = repaint), refreshed whenever its file or channel changes. */
export function showMaskImage(node: LGraphNode, filename: string, channel: string): void {
  const view = viewOf(node);
  const request = ++view.pictureRequests;
  if (!filename) {
    view.images = [];
    node.setDirtyCanvas(true, true);
    return;
  }
  const url = `${viewUrl({ filename, type: "input" })}&t=${Date.now()}`;
  const image = new Image();
  const picture: NodePicture = { url, image, mask: {} };
  image.onload = () => {
    if (view.pictureRequests !== request) return;
    const { canvas, coverage } = maskPreview(image, channel);
    picture.mask = { preview: canvas, caption: `${image.naturalWidth} × ${image.naturalHeight} · ${(coverage * 100).toFixed(1)}% masked` };
    node.setDirtyCanvas(true, true);
  };
  image.onerror = () => node.setDirtyCanvas(true, true);
  image.src = url;
  view.images = [picture];
  ensureRoomForImages(node);
  node.setDirtyCanvas(true, true);
}
