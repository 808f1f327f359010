/**
 * The mask being painted, at the image's own resolution: a canvas whose alpha is the mask value
 * (opaque white = repaint). Brush and eraser stamps with a hardness falloff, undo/redo snapshots
 * bounded by memory, clear / fill / invert, and export as the PNG the server's LoadMask reads
 * with channel "luminance" (white = repaint on black).
 */

export type Tool = "brush" | "eraser";

export interface BrushSettings {
  tool: Tool;
  /** Diameter in image pixels. */
  size: number;
  /** 0 = soft edge all the way in, 1 = hard edge. */
  hardness: number;
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
  #stamp: HTMLCanvasElement | undefined;
  #stampKey = "";
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
  }

  #dab(x: number, y: number, brush: BrushSettings): void {
    const stamp = this.#stampFor(brush);
    const ctx = this.#ctx;
    ctx.globalCompositeOperation = brush.tool === "eraser" ? "destination-out" : "source-over";
    ctx.drawImage(stamp, x - stamp.width / 2, y - stamp.height / 2);
    ctx.globalCompositeOperation = "source-over";
    this.#revision++;
  }

  /** A white disc with a radial falloff from hardness × radius to the edge, drawn once per brush setting. */
  #stampFor(brush: BrushSettings): HTMLCanvasElement {
    const key = `${brush.size}:${brush.hardness}`;
    if (this.#stamp && this.#stampKey === key) return this.#stamp;
    const diameter = Math.max(1, Math.ceil(brush.size));
    const stamp = document.createElement("canvas");
    stamp.width = stamp.height = diameter + 2;
    const ctx = stamp.getContext("2d")!;
    const c = stamp.width / 2;
    const radius = brush.size / 2;
    const gradient = ctx.createRadialGradient(c, c, 0, c, c, radius);
    const hard = Math.min(0.999, Math.max(0, brush.hardness));
    gradient.addColorStop(0, "rgba(255,255,255,1)");
    gradient.addColorStop(hard, "rgba(255,255,255,1)");
    gradient.addColorStop(1, "rgba(255,255,255,0)");
    ctx.fillStyle = gradient;
    ctx.beginPath();
    ctx.arc(c, c, radius, 0, Math.PI * 2);
    ctx.fill();
    this.#stamp = stamp;
    this.#stampKey = key;
    return stamp;
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
