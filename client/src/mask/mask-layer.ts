/**
 * The mask being painted, at the image's own resolution: a canvas whose alpha is the mask value
 * (opaque white = repaint, grey = partly: soft inpainting reads it as how much may change). Brush and
 * eraser dabs with a hardness falloff and an opacity, undo/redo snapshots bounded by memory,
 * clear / fill / invert, and export as the PNG the server's LoadMask reads with channel "luminance"
 * (white = repaint on black, grey kept).
 *
 * A stroke behaves like a painting program's at a given opacity: within one stroke the dabs take the
 * larger of their coverages, not the sum, so a stroke at 50 % paints 50 % grey however often it passes
 * over a place, and its soft edge keeps the falloff of one dab. A second stroke adds over the first.
 */

export type Tool = "brush" | "eraser";

export interface BrushSettings {
  tool: Tool;
  /** Diameter in image pixels. */
  size: number;
  /** 0 = soft edge all the way in, 1 = hard edge. */
  hardness: number;
  /** The most a stroke paints (brush) or takes away (eraser): 1 = white, 0.5 = mid grey. */
  opacity: number;
}

/** Undo snapshots are whole-mask copies; keep their total under this many bytes. */
const UNDO_BYTES = 256 * 1024 * 1024;
const MAX_UNDO = 50;

export class MaskLayer {
  readonly canvas: HTMLCanvasElement;
  readonly #ctx: CanvasRenderingContext2D;
  #undo: ImageData[] = [];
  #redo: ImageData[] = [];
  #last: [number, number] | undefined;
  /** The stroke in progress: the mask's alpha when it began, and each pixel's largest dab coverage so far (0–255). */
  #stroke: { base: Uint8ClampedArray; coverage: Uint8Array } | undefined;
  #revision = 0;
  #coverage: { revision: number; value: number } | undefined;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.canvas = document.createElement("canvas");
    this.canvas.width = width;
    this.canvas.height = height;
    this.#ctx = this.canvas.getContext("2d", { willReadFrequently: true })!;
  }

  get canUndo(): boolean {
    return this.#undo.length > 0;
  }

  get canRedo(): boolean {
    return this.#redo.length > 0;
  }

  /** Goes up on every change to the mask, so a view can redraw or recount only when there is something new. */
  get revision(): number {
    return this.#revision;
  }

  /** Call before any change: the current mask becomes one undo step. */
  checkpoint(): void {
    this.#undo.push(this.#ctx.getImageData(0, 0, this.width, this.height));
    this.#redo = [];
    const perStep = this.width * this.height * 4;
    const limit = Math.max(1, Math.min(MAX_UNDO, Math.floor(UNDO_BYTES / perStep)));
    while (this.#undo.length > limit) this.#undo.shift();
  }

  undo(): boolean {
    return this.#restore(this.#undo, this.#redo);
  }

  redo(): boolean {
    return this.#restore(this.#redo, this.#undo);
  }

  /** Puts back the newest snapshot of `from`, keeping the current mask on `to`. */
  #restore(from: ImageData[], to: ImageData[]): boolean {
    const snapshot = from.pop();
    if (!snapshot) return false;
    to.push(this.#ctx.getImageData(0, 0, this.width, this.height));
    this.#ctx.putImageData(snapshot, 0, 0);
    this.#revision++;
    return true;
  }

  beginStroke(x: number, y: number, brush: BrushSettings): void {
    this.checkpoint();
    const before = this.#undo[this.#undo.length - 1].data;
    const base = new Uint8ClampedArray(this.width * this.height);
    for (let i = 0; i < base.length; i++) base[i] = before[i * 4 + 3];
    this.#stroke = { base, coverage: new Uint8Array(this.width * this.height) };
    this.#last = [x, y];
    this.#dab(x, y, brush);
  }

  /** Stamps along the segment from the last point, spaced a fraction of the radius so the line is smooth. */
  continueStroke(x: number, y: number, brush: BrushSettings): void {
    const [x0, y0] = this.#last ?? [x, y];
    const distance = Math.hypot(x - x0, y - y0);
    const spacing = Math.max(1, brush.size * 0.15);
    const steps = Math.min(10_000, Math.ceil(distance / spacing));
    for (let i = 1; i <= steps; i++) this.#dab(x0 + ((x - x0) * i) / steps, y0 + ((y - y0) * i) / steps, brush);
    this.#last = [x, y];
  }

  endStroke(): void {
    this.#last = undefined;
    this.#stroke = undefined;
  }

  /**
   * One dab: full coverage out to hardness × radius, then a linear fall to 0 at the radius (at least a
   * pixel wide, which also smooths a hard brush's rim). Only the dab's box is read and written.
   */
  #dab(x: number, y: number, brush: BrushSettings): void {
    const stroke = this.#stroke;
    if (!stroke) return;
    const radius = Math.max(0.5, brush.size / 2);
    const inner = Math.min(1, Math.max(0, brush.hardness)) * radius;
    const ramp = Math.max(1, radius - inner);
    const x0 = Math.max(0, Math.floor(x - radius - 1));
    const y0 = Math.max(0, Math.floor(y - radius - 1));
    const x1 = Math.min(this.width, Math.ceil(x + radius + 1));
    const y1 = Math.min(this.height, Math.ceil(y + radius + 1));
    if (x1 <= x0 || y1 <= y0) return;
    const opacity = Math.min(1, Math.max(0, brush.opacity));
    const erase = brush.tool === "eraser";
    const box = this.#ctx.createImageData(x1 - x0, y1 - y0);
    const out = box.data;
    for (let py = y0; py < y1; py++) {
      for (let px = x0; px < x1; px++) {
        const p = py * this.width + px;
        const distance = Math.hypot(px + 0.5 - x, py + 0.5 - y);
        const falloff = distance <= inner ? 1 : Math.min(1, Math.max(0, (radius + (ramp === 1 ? 0.5 : 0) - distance) / ramp));
        const coverage = Math.max(stroke.coverage[p], Math.round(falloff * 255));
        stroke.coverage[p] = coverage;
        const amount = (opacity * coverage) / 255;
        const base = stroke.base[p];
        const o = ((py - y0) * (x1 - x0) + (px - x0)) * 4;
        out[o] = out[o + 1] = out[o + 2] = 255;
        out[o + 3] = Math.round(erase ? base * (1 - amount) : base + amount * (255 - base));
      }
    }
    this.#ctx.putImageData(box, x0, y0);
    this.#revision++;
  }

  clear(): void {
    this.checkpoint();
    this.#ctx.clearRect(0, 0, this.width, this.height);
    this.#revision++;
  }

  fill(): void {
    this.checkpoint();
    this.#ctx.fillStyle = "#fff";
    this.#ctx.fillRect(0, 0, this.width, this.height);
    this.#revision++;
  }

  invert(): void {
    this.checkpoint();
    const image = this.#ctx.getImageData(0, 0, this.width, this.height);
    const data = image.data;
    for (let i = 0; i < data.length; i += 4) {
      data[i] = data[i + 1] = data[i + 2] = 255;
      data[i + 3] = 255 - data[i + 3];
    }
    this.#ctx.putImageData(image, 0, 0);
    this.#revision++;
  }

  /** Loads a mask picture (white = repaint, by luminance), scaled to this layer; not an undo step. */
  loadFrom(image: CanvasImageSource): void {
    const scratch = document.createElement("canvas");
    scratch.width = this.width;
    scratch.height = this.height;
    const ctx = scratch.getContext("2d", { willReadFrequently: true })!;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.width, this.height);
    ctx.drawImage(image, 0, 0, this.width, this.height);
    const pixels = ctx.getImageData(0, 0, this.width, this.height);
    const data = pixels.data;
    for (let i = 0; i < data.length; i += 4) {
      const luminance = Math.round(0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2]);
      data[i] = data[i + 1] = data[i + 2] = 255;
      data[i + 3] = luminance;
    }
    this.#ctx.putImageData(pixels, 0, 0);
    this.#revision++;
  }

  /**
   * Fraction of pixels at least half masked; shown in the toolbar so an empty save is obvious.
   * Counting reads the whole mask back, so the count is kept until the mask changes: zooming
   * or moving a slider on a 2048×2048 mask must not read 16 MB each time.
   */
  coverage(): number {
    if (this.#coverage?.revision === this.#revision) return this.#coverage.value;
    const data = this.#ctx.getImageData(0, 0, this.width, this.height).data;
    let count = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] >= 128) count++;
    this.#coverage = { revision: this.#revision, value: count / (this.width * this.height) };
    return this.#coverage.value;
  }

  /** The mask as an opaque greyscale PNG: white = repaint, black = keep. */
  toPng(): Promise<Blob> {
    const out = document.createElement("canvas");
    out.width = this.width;
    out.height = this.height;
    const ctx = out.getContext("2d")!;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.width, this.height);
    ctx.drawImage(this.canvas, 0, 0);
    return new Promise((resolve, reject) => out.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("PNG encoding failed"))), "image/png"));
  }
}
