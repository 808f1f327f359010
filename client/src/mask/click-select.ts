/**
 * Click-to-select in the mask painter: with the Select tool on, a click marks a point on the object, a
 * shift-click a point that is not on it, and a drag draws a box around it; after each, the server's Segment
 * Anything (POST /api/segment) proposes the object's mask, shown in cyan over the picture. Accept adds the
 * proposal to the painted mask as one undo step (the brush and eraser then correct it); Clear drops the points.
 * Each new point asks again with all of them, so the picture's embedding, cached on the server, is reused.
 */
import { segmentPicture, helperModels } from "../api/segment-api.ts";
import type { MaskLayer } from "./mask-layer.ts";

export interface ClickSelectHost {
  /** The painter's element: pointer events on the view are taken here, before the brush sees them. */
  readonly root: HTMLElement;
  readonly toolbar: HTMLElement;
  readonly view: HTMLCanvasElement;
  readonly layer: MaskLayer;
  /** The picture's name in the server's input folder. */
  readonly imageFile: string;
  toImage(event: { clientX: number; clientY: number }): [number, number];
  /** The painter's state changed: redraw and update its toolbar. */
  changed(): void;
}

interface Point {
  readonly x: number;
  readonly y: number;
  readonly positive: boolean;
}

interface Box {
  readonly left: number;
  readonly top: number;
  readonly right: number;
  readonly bottom: number;
}

/** A drag shorter than this (screen pixels) is a click. */
const DRAG_PIXELS = 6;

export class ClickSelect {
  readonly #host: ClickSelectHost;
  readonly #buttons: { toggle: HTMLButtonElement; accept: HTMLButtonElement; clear: HTMLButtonElement };
  readonly #status: HTMLSpanElement;
  #active = false;
  #points: Point[] = [];
  #box: Box | undefined;
  #drag: { x: number; y: number; clientX: number; clientY: number; current: [number, number] } | undefined;
  /** The proposal as drawn (cyan where selected) and as added to the mask (white where selected). */
  #proposal: { tinted: HTMLCanvasElement; white: HTMLCanvasElement } | undefined;
  #request: AbortController | undefined;
  #asked = 0;
  readonly #onPointerDown = (event: PointerEvent) => this.#pointerDown(event);
  readonly #onPointerMove = (event: PointerEvent) => this.#pointerMove(event);
  readonly #onPointerUp = (event: PointerEvent) => this.#pointerUp(event);

  constructor(host: ClickSelectHost) {
    this.#host = host;
    const group = document.createElement("span");
    group.className = "mf-mask-group mf-select-group";
    group.innerHTML = `
      <button data-select="toggle" title="Select an object by clicking it: click on it, shift-click off it, drag a box around it">Select</button>
      <button data-select="accept" title="Add the proposed selection to the mask">Accept</button>
      <button data-select="clear" title="Drop the points and the proposal">Clear points</button>
      <span class="mf-select-status" data-show="select-status"></span>`;
    const end = host.toolbar.querySelector(".mf-mask-end");
    host.toolbar.insertBefore(group, end);
    this.#buttons = {
      toggle: group.querySelector('[data-select="toggle"]')!,
      accept: group.querySelector('[data-select="accept"]')!,
      clear: group.querySelector('[data-select="clear"]')!,
    };
    this.#status = group.querySelector(".mf-select-status")!;
    group.addEventListener("click", (event) => {
      const action = (event.target as HTMLElement).closest<HTMLElement>("[data-select]")?.dataset.select;
      if (action === "toggle") this.setActive(!this.#active);
      else if (action === "accept") this.accept();
      else if (action === "clear") this.clear();
    });
    // Capture on the painter's element: runs before the view's own listeners, which then never see a handled event.
    host.root.addEventListener("pointerdown", this.#onPointerDown, true);
    host.root.addEventListener("pointermove", this.#onPointerMove, true);
    host.root.addEventListener("pointerup", this.#onPointerUp, true);
    this.#sync();
  }

  get active(): boolean {
    return this.#active;
  }

  setActive(active: boolean): void {
    this.#active = active;
    this.#host.root.dataset.select = active ? "on" : "off";
    this.#host.view.style.cursor = active ? "crosshair" : "";
    if (active && !this.#points.length && !this.#box) void this.#describeModel();
    this.#sync();
    this.#host.changed();
  }

  /** Adds the proposal to the painted mask (one undo step) and starts a new selection. */
  accept(): void {
    const proposal = this.#proposal;
    if (!proposal) return;
    const layer = this.#host.layer;
    // The union, through the layer's own loader: black, the painted mask as its luminance, the proposal lightened in.
    const union = document.createElement("canvas");
    union.width = layer.width;
    union.height = layer.height;
    const ctx = union.getContext("2d")!;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, union.width, union.height);
    ctx.drawImage(layer.canvas, 0, 0);
    ctx.globalCompositeOperation = "lighten";
    ctx.drawImage(proposal.white, 0, 0);
    layer.checkpoint();
    layer.loadFrom(union);
    this.clear();
    this.#say("Added to the mask; paint or erase to correct it");
  }

  clear(): void {
    this.#request?.abort();
    this.#points = [];
    this.#box = undefined;
    this.#proposal = undefined;
    this.#sync();
    this.#host.changed();
  }

  /** Draws the proposal, the points and the box; called with the picture's transform set. */
  drawOverlay(ctx: CanvasRenderingContext2D): void {
    if (this.#proposal) {
      ctx.globalAlpha = 0.55;
      ctx.drawImage(this.#proposal.tinted, 0, 0);
      ctx.globalAlpha = 1;
    }
    const scale = ctx.getTransform().a || 1;
    const box = this.#drag ? boxOf([this.#drag.x, this.#drag.y], this.#drag.current) : this.#box;
    if (box) {
      ctx.strokeStyle = "#3cf";
      ctx.lineWidth = 2 / scale;
      ctx.setLineDash([6 / scale, 4 / scale]);
      ctx.strokeRect(box.left, box.top, box.right - box.left, box.bottom - box.top);
      ctx.setLineDash([]);
    }
    for (const point of this.#points) {
      ctx.beginPath();
      ctx.arc(point.x, point.y, 5 / scale, 0, Math.PI * 2);
      ctx.fillStyle = point.positive ? "#2d2" : "#e33";
      ctx.fill();
      ctx.lineWidth = 1.5 / scale;
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
  }

  dispose(): void {
    this.#request?.abort();
    this.#host.root.removeEventListener("pointerdown", this.#onPointerDown, true);
    this.#host.root.removeEventListener("pointermove", this.#onPointerMove, true);
    this.#host.root.removeEventListener("pointerup", this.#onPointerUp, true);
  }

  #pointerDown(event: PointerEvent): void {
    if (!this.#active || event.target !== this.#host.view || event.button !== 0) return;
    event.stopPropagation();
    const [x, y] = this.#host.toImage(event);
    this.#drag = { x, y, clientX: event.clientX, clientY: event.clientY, current: [x, y] };
    this.#host.view.setPointerCapture(event.pointerId);
  }

  #pointerMove(event: PointerEvent): void {
    if (!this.#drag) return;
    event.stopPropagation();
    this.#drag.current = this.#host.toImage(event);
    this.#host.changed();
  }

  #pointerUp(event: PointerEvent): void {
    const drag = this.#drag;
    if (!drag) return;
    event.stopPropagation();
    this.#drag = undefined;
    if (this.#host.view.hasPointerCapture(event.pointerId)) this.#host.view.releasePointerCapture(event.pointerId);
    const { width, height } = this.#host.layer;
    const inside = ([x, y]: [number, number]): [number, number] => [Math.min(width - 1, Math.max(0, x)), Math.min(height - 1, Math.max(0, y))];
    if (Math.hypot(event.clientX - drag.clientX, event.clientY - drag.clientY) >= DRAG_PIXELS) {
      this.#box = boxOf(inside([drag.x, drag.y]), inside(this.#host.toImage(event)));
    } else {
      if (drag.x < 0 || drag.y < 0 || drag.x >= width || drag.y >= height) return;
      this.#points.push({ x: Math.round(drag.x), y: Math.round(drag.y), positive: !event.shiftKey });
    }
    this.#host.changed();
    void this.#ask();
  }

  async #ask(): Promise<void> {
    this.#request?.abort();
    const request = new AbortController();
    this.#request = request;
    const asked = ++this.#asked;
    this.#say("Selecting…");
    const started = performance.now();
    try {
      const answer = await segmentPicture({ image: this.#host.imageFile, points: this.#points, box: this.#box }, request.signal);
      const proposal = await proposalFrom(answer.mask);
      if (asked !== this.#asked) return;
      this.#proposal = proposal;
      this.#say(`Proposed selection (${Math.round(performance.now() - started)} ms${answer.embedding === "cached" ? "" : ", picture analysed"}): Accept adds it to the mask`);
    } catch (error) {
      if (request.signal.aborted || asked !== this.#asked) return;
      this.#say((error as Error).message);
    }
    this.#sync();
    this.#host.changed();
  }

  /** Says whether the server has the model, before the first click. */
  async #describeModel(): Promise<void> {
    try {
      const models = await helperModels();
      const sam = models.find((model) => model.kind === "segment-anything");
      if (!sam) return;
      if (!this.#points.length && !this.#box) this.#say(sam.installed ? `${sam.title}: click the object` : `${sam.title} is not installed: run \`${sam.pullCommand}\``);
    } catch {
      // An embedded server without the route: the first click says what is missing.
    }
  }

  #say(text: string): void {
    this.#status.textContent = text;
    this.#status.title = text;
  }

  #sync(): void {
    this.#buttons.toggle.classList.toggle("mf-active", this.#active);
    this.#buttons.accept.disabled = !this.#proposal;
    this.#buttons.clear.disabled = !this.#points.length && !this.#box && !this.#proposal;
  }
}

function boxOf(a: [number, number], b: [number, number]): Box {
  return { left: Math.round(Math.min(a[0], b[0])), top: Math.round(Math.min(a[1], b[1])), right: Math.round(Math.max(a[0], b[0])), bottom: Math.round(Math.max(a[1], b[1])) };
}

/** The server's greyscale mask → a cyan overlay and a white-on-transparent layer, both at the picture's size. */
async function proposalFrom(png: Blob): Promise<{ tinted: HTMLCanvasElement; white: HTMLCanvasElement }> {
  const bitmap = await createImageBitmap(png);
  const white = document.createElement("canvas");
  white.width = bitmap.width;
  white.height = bitmap.height;
  const ctx = white.getContext("2d", { willReadFrequently: true })!;
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const pixels = ctx.getImageData(0, 0, white.width, white.height);
  for (let i = 0; i < pixels.data.length; i += 4) {
    pixels.data[i + 3] = pixels.data[i];
    pixels.data[i] = pixels.data[i + 1] = pixels.data[i + 2] = 255;
  }
  ctx.putImageData(pixels, 0, 0);
  const tinted = document.createElement("canvas");
  tinted.width = white.width;
  tinted.height = white.height;
  const tint = tinted.getContext("2d")!;
  tint.drawImage(white, 0, 0);
  tint.globalCompositeOperation = "source-in";
  tint.fillStyle = "#1ec8ff";
  tint.fillRect(0, 0, tinted.width, tinted.height);
  return { tinted, white };
}
