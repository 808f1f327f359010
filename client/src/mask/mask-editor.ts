/**
 * The full-window mask painter over an image: brush and eraser with size, hardness and opacity
 * (grey paints a soft mask: see mask-layer.ts), undo/redo, clear, invert, fill, zoom (wheel) and pan
 * (space-drag, middle or right drag), the overlay's opacity, and keyboard shortcuts (B, E, [ ], 1–9 and 0
 * for 10–100 % opacity, X, Ctrl+Z, Ctrl+Shift+Z / Ctrl+Y, Esc, Enter).
 * It resolves with the mask PNG on save, or undefined on cancel. While open it is modal: no key
 * reaches the graph behind it, where Delete would remove the selected node and Ctrl+Enter queue a run.
 */
import { ClickSelect } from "./click-select.ts";
import { type BrushSettings, MaskLayer, type Tool } from "./mask-layer.ts";

export interface MaskEditorOptions {
  readonly image: HTMLImageElement;
  /** A mask to start from (white = repaint), e.g. the one saved last time. */
  readonly initialMask?: HTMLImageElement;
  readonly title: string;
  /** The picture's name in the server's input folder: with it, the Select tool (click-to-select) is offered. */
  readonly imageFile?: string;
}

const MIN_SIZE = 1;
const MAX_SIZE = 1000;

export function openMaskEditor(options: MaskEditorOptions): Promise<Blob | undefined> {
  return new Promise((resolve) => new MaskEditor(options, resolve));
}

class MaskEditor {
  readonly #root: HTMLDivElement;
  readonly #view: HTMLCanvasElement;
  readonly #ctx: CanvasRenderingContext2D;
  readonly #layer: MaskLayer;
  readonly #tinted: HTMLCanvasElement;
  readonly #brush: BrushSettings;
  /** The largest brush the size slider offers for this picture; the keys stop there too. */
  readonly #maxSize: number;
  /** The mask revision #tinted was made from: the tint is redone only when the mask changed. */
  #tintedRevision = -1;
  #swapTool: Tool = "eraser";
  #opacity = 0.6;
  #scale = 1;
  #offset: [number, number] = [0, 0];
  #painting = false;
  #panning: { x: number; y: number; ox: number; oy: number } | undefined;
  #spaceDown = false;
  #pointer: [number, number] | undefined;
  #frame = 0;
  /** While the PNG is encoded: no keys, strokes or buttons, so nothing is painted after the picture was taken. */
  #saving = false;
  readonly #controls: Record<string, HTMLElement> = {};
  /** Click-to-select (client/src/mask/click-select.ts), when the picture is one the server can read. */
  readonly #select: ClickSelect | undefined;
  readonly #onKey = (event: KeyboardEvent) => this.#key(event);
  readonly #onKeyUp = (event: KeyboardEvent) => {
    if (event.key === " ") this.#spaceDown = false;
    event.stopPropagation();
  };
  // A space released in another window never sends its keyup here.
  readonly #onBlur = () => (this.#spaceDown = false);
  readonly #onResize = () => {
    this.#resize();
    // A window made narrower (its toolbar may wrap) would cut the picture off: fit again unless the user zoomed or panned.
    if (this.#fitted) {
      this.#fit();
      this.#sync();
    }
  };
  /** Whether the view is still the fitted one. */
  #fitted = true;

  constructor(
    readonly options: MaskEditorOptions,
    readonly done: (mask: Blob | undefined) => void,
  ) {
    const { image } = options;
    this.#layer = new MaskLayer(image.naturalWidth, image.naturalHeight);
    if (options.initialMask) this.#layer.loadFrom(options.initialMask);
    this.#tinted = document.createElement("canvas");
    this.#tinted.width = image.naturalWidth;
    this.#tinted.height = image.naturalHeight;
    const initialSize = Math.max(4, Math.round(Math.min(image.naturalWidth, image.naturalHeight) / 16));
    this.#brush = { tool: "brush", size: initialSize, hardness: 0.8, opacity: 1 };
    this.#maxSize = Math.min(MAX_SIZE, Math.max(image.naturalWidth, image.naturalHeight));

    this.#root = document.createElement("div");
    this.#root.className = "mf-mask-editor";
    this.#root.dataset.testid = "mask-editor";
    this.#root.innerHTML = `
      <div class="mf-mask-toolbar">
        <strong class="mf-mask-title"></strong>
        <span class="mf-mask-group">
          <button data-action="brush" title="Brush (B)">Brush</button>
          <button data-action="eraser" title="Eraser (E)">Eraser</button>
        </span>
        <span class="mf-mask-group">
          <label>Size <input data-control="size" type="range" min="${MIN_SIZE}" max="${this.#maxSize}" step="1"><span data-show="size"></span></label>
          <label>Hardness <input data-control="hardness" type="range" min="0" max="1" step="0.05"><span data-show="hardness"></span></label>
          <label title="How white a stroke paints: below 100 % a grey mask, which soft inpainting reads as partial change (keys 1–9, 0)">Opacity <input data-control="brush-opacity" type="range" min="0.05" max="1" step="0.05"><span data-show="brush-opacity"></span></label>
          <label title="How strongly the mask is shown over the picture">Overlay <input data-control="opacity" type="range" min="0.1" max="1" step="0.05"><span data-show="opacity"></span></label>
        </span>
        <span class="mf-mask-group">
          <button data-action="undo" title="Undo (Ctrl+Z)">Undo</button>
          <button data-action="redo" title="Redo (Ctrl+Shift+Z)">Redo</button>
          <button data-action="clear" title="Clear the mask">Clear</button>
          <button data-action="fill" title="Mask everything">Fill</button>
          <button data-action="invert" title="Invert the mask">Invert</button>
          <button data-action="fit" title="Fit the image to the window">Fit</button>
        </span>
        <span class="mf-mask-group mf-mask-end">
          <button data-action="cancel" title="Cancel (Esc)">Cancel</button>
          <button data-action="save" class="mf-primary" title="Save and connect (Enter)">Save mask</button>
        </span>
      </div>
      <canvas class="mf-mask-view"></canvas>
      <div class="mf-mask-help"><span>B brush · E eraser · [ ] size · 1–0 opacity · X swap · wheel zoom · space/right-drag pan · Ctrl+Z undo · Ctrl+Shift+Z redo · Enter save · Esc cancel</span><span class="mf-mask-info" data-show="info"></span></div>`;
    const title = this.#root.querySelector<HTMLElement>(".mf-mask-title")!;
    title.textContent = options.title;
    // A long file name is cut to keep the toolbar on one row; the whole name is in the tooltip.
    title.title = options.title;
    for (const element of this.#root.querySelectorAll<HTMLElement>("[data-control],[data-action]")) {
      this.#controls[element.dataset.control ?? element.dataset.action!] = element;
    }
    this.#view = this.#root.querySelector("canvas")!;
    this.#ctx = this.#view.getContext("2d")!;
    document.body.append(this.#root);
    this.#select = options.imageFile
      ? new ClickSelect({
          root: this.#root,
          toolbar: this.#root.querySelector(".mf-mask-toolbar")!,
          view: this.#view,
          layer: this.#layer,
          imageFile: options.imageFile,
          toImage: (event) => this.#toImage(event),
          changed: () => this.#sync(),
        })
      : undefined;

    this.#root.querySelector(".mf-mask-toolbar")!.addEventListener("click", (event) => {
      const action = (event.target as HTMLElement).closest<HTMLElement>("[data-action]")?.dataset.action;
      if (action) this.#act(action);
    });
    this.#input("size", (v) => (this.#brush.size = v));
    this.#input("hardness", (v) => (this.#brush.hardness = v));
    this.#input("brush-opacity", (v) => (this.#brush.opacity = v));
    this.#input("opacity", (v) => (this.#opacity = v));
    this.#view.addEventListener("pointerdown", (event) => this.#pointerDown(event));
    this.#view.addEventListener("pointermove", (event) => this.#pointerMove(event));
    this.#view.addEventListener("pointerup", (event) => this.#pointerUp(event));
    this.#view.addEventListener("pointercancel", (event) => this.#pointerUp(event));
    this.#view.addEventListener("pointerleave", () => {
      this.#pointer = undefined;
      this.#render();
    });
    this.#view.addEventListener("contextmenu", (event) => event.preventDefault());
    this.#view.addEventListener("wheel", (event) => this.#wheel(event), { passive: false });
    window.addEventListener("keydown", this.#onKey, true);
    window.addEventListener("keyup", this.#onKeyUp, true);
    window.addEventListener("resize", this.#onResize);
    window.addEventListener("blur", this.#onBlur);
    this.#resize();
    this.#fit();
    this.#sync();
  }

  #input(name: string, apply: (value: number) => void): void {
    this.#controls[name].addEventListener("input", (event) => {
      apply(Number((event.target as HTMLInputElement).value));
      this.#sync();
    });
  }

  /** Puts the state into the toolbar and redraws. */
  #sync(): void {
    (this.#controls.size as HTMLInputElement).value = String(this.#brush.size);
    (this.#controls.hardness as HTMLInputElement).value = String(this.#brush.hardness);
    (this.#controls.opacity as HTMLInputElement).value = String(this.#opacity);
    (this.#controls["brush-opacity"] as HTMLInputElement).value = String(this.#brush.opacity);
    this.#root.querySelector('[data-show="brush-opacity"]')!.textContent = `${Math.round(this.#brush.opacity * 100)}%`;
    this.#root.querySelector('[data-show="size"]')!.textContent = `${Math.round(this.#brush.size)} px`;
    this.#root.querySelector('[data-show="hardness"]')!.textContent = `${Math.round(this.#brush.hardness * 100)}%`;
    this.#root.querySelector('[data-show="opacity"]')!.textContent = `${Math.round(this.#opacity * 100)}%`;
    this.#controls.brush.classList.toggle("mf-active", this.#brush.tool === "brush");
    this.#controls.eraser.classList.toggle("mf-active", this.#brush.tool === "eraser");
    (this.#controls.undo as HTMLButtonElement).disabled = !this.#layer.canUndo;
    (this.#controls.redo as HTMLButtonElement).disabled = !this.#layer.canRedo;
    this.#root.querySelector('[data-show="info"]')!.textContent =
      `${this.#layer.width}×${this.#layer.height} · ${Math.round(this.#scale * 100)}% · ${(this.#layer.coverage() * 100).toFixed(1)}% masked`;
    this.#root.dataset.tool = this.#brush.tool;
    this.#render();
  }

  #act(action: string): void {
    if (this.#saving) return;
    // An undo or a clear in the middle of a stroke would have the rest of the stroke land on the result.
    this.#endStroke();
    switch (action) {
      case "brush":
      case "eraser":
        this.#setTool(action);
        break;
      case "undo":
        this.#layer.undo();
        break;
      case "redo":
        this.#layer.redo();
        break;
      case "clear":
        this.#layer.clear();
        break;
      case "fill":
        this.#layer.fill();
        break;
      case "invert":
        this.#layer.invert();
        break;
      case "fit":
        this.#fit();
        break;
      case "cancel":
        this.#close(undefined);
        return;
      case "save":
        void this.#save();
        return;
    }
    this.#sync();
  }

  #setTool(tool: Tool): void {
    if (tool === this.#brush.tool) return;
    this.#swapTool = this.#brush.tool;
    this.#brush.tool = tool;
  }

  #key(event: KeyboardEvent): void {
    event.stopPropagation();
    if (this.#saving) return;
    if (isTextEntry(event.target) && event.key !== "Escape" && event.key !== "Enter") return;
    const ctrl = event.ctrlKey || event.metaKey;
    const key = event.key.toLowerCase();
    let handled = true;
    if (ctrl && key === "z" && event.shiftKey) this.#act("redo");
    else if (ctrl && key === "z") this.#act("undo");
    else if (ctrl && key === "y") this.#act("redo");
    // Select-all would highlight the toolbar and turn the next drag on the picture into a drag of that selection.
    else if (ctrl && key === "a") handled = true;
    else if (ctrl) handled = false;
    else if (key === "b") this.#act("brush");
    else if (key === "e") this.#act("eraser");
    else if (key === "x") {
      this.#setTool(this.#swapTool);
      this.#sync();
    } else if (key === "[" || key === "]") {
      const factor = key === "]" ? 1.2 : 1 / 1.2;
      this.#brush.size = Math.round(Math.min(this.#maxSize, Math.max(MIN_SIZE, this.#brush.size * factor + (key === "]" ? 1 : -1) * 0.5)));
      this.#sync();
    } else if (/^[0-9]$/.test(key)) {
      // As in painting programs: 1 is 10 %, 9 is 90 %, 0 is 100 %.
      this.#brush.opacity = key === "0" ? 1 : Number(key) / 10;
      this.#sync();
    } else if (key === "escape") this.#act("cancel");
    else if (key === "enter") this.#act("save");
    else if (key === " ") this.#spaceDown = true;
    else handled = false;
    if (handled) event.preventDefault();
  }

  #toImage(event: { clientX: number; clientY: number }): [number, number] {
    const box = this.#view.getBoundingClientRect();
    return [(event.clientX - box.left - this.#offset[0]) / this.#scale, (event.clientY - box.top - this.#offset[1]) / this.#scale];
  }

  #pointerDown(event: PointerEvent): void {
    if (this.#saving) return;
    this.#view.setPointerCapture(event.pointerId);
    if (event.button === 1 || event.button === 2 || this.#spaceDown) {
      this.#panning = { x: event.clientX, y: event.clientY, ox: this.#offset[0], oy: this.#offset[1] };
      return;
    }
    if (event.button !== 0) return;
    this.#painting = true;
    const [x, y] = this.#toImage(event);
    this.#layer.beginStroke(x, y, this.#brush);
    this.#render();
  }

  #pointerMove(event: PointerEvent): void {
    this.#pointer = [event.clientX, event.clientY];
    if (this.#panning) {
      this.#offset = [this.#panning.ox + event.clientX - this.#panning.x, this.#panning.oy + event.clientY - this.#panning.y];
      this.#fitted = false;
    } else if (this.#painting) {
      // Coalesced events keep fast strokes smooth where the browser batches pointer moves.
      const points = event.getCoalescedEvents?.() ?? [event];
      for (const point of points.length ? points : [event]) {
        const [x, y] = this.#toImage(point);
        this.#layer.continueStroke(x, y, this.#brush);
      }
    }
    this.#render();
  }

  #pointerUp(event: PointerEvent): void {
    if (this.#view.hasPointerCapture(event.pointerId)) this.#view.releasePointerCapture(event.pointerId);
    if (this.#endStroke()) this.#sync();
    this.#panning = undefined;
  }

  /** Ends the stroke in progress; says whether there was one. */
  #endStroke(): boolean {
    if (!this.#painting) return false;
    this.#layer.endStroke();
    this.#painting = false;
    return true;
  }

  #wheel(event: WheelEvent): void {
    event.preventDefault();
    const box = this.#view.getBoundingClientRect();
    const cx = event.clientX - box.left;
    const cy = event.clientY - box.top;
    const factor = Math.exp(-event.deltaY * 0.0015);
    const scale = Math.min(32, Math.max(0.05, this.#scale * factor));
    // Zoom about the cursor: the image point under it stays put.
    this.#offset = [cx - ((cx - this.#offset[0]) * scale) / this.#scale, cy - ((cy - this.#offset[1]) * scale) / this.#scale];
    this.#scale = scale;
    this.#fitted = false;
    this.#sync();
  }

  #resize(): void {
    const box = this.#view.getBoundingClientRect();
    this.#view.width = Math.max(1, Math.round(box.width));
    this.#view.height = Math.max(1, Math.round(box.height));
    this.#render();
  }

  #fit(): void {
    const { width, height } = this.#view;
    const scale = Math.min((width - 40) / this.#layer.width, (height - 40) / this.#layer.height, 4);
    this.#scale = Math.max(0.05, scale);
    this.#offset = [(width - this.#layer.width * this.#scale) / 2, (height - this.#layer.height * this.#scale) / 2];
    this.#fitted = true;
  }

  #render(): void {
    cancelAnimationFrame(this.#frame);
    this.#frame = requestAnimationFrame(() => this.#draw());
  }

  #draw(): void {
    const ctx = this.#ctx;
    const { width, height } = this.#view;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#111";
    ctx.fillRect(0, 0, width, height);
    ctx.setTransform(this.#scale, 0, 0, this.#scale, this.#offset[0], this.#offset[1]);
    ctx.imageSmoothingEnabled = this.#scale < 2;
    ctx.drawImage(this.options.image, 0, 0);
    if (this.#tintedRevision !== this.#layer.revision) this.#retint();
    ctx.globalAlpha = this.#opacity;
    ctx.drawImage(this.#tinted, 0, 0);
    ctx.globalAlpha = 1;
    this.#select?.drawOverlay(ctx);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    if (this.#pointer && !this.#panning && !this.#select?.active) {
      const box = this.#view.getBoundingClientRect();
      const radius = (this.#brush.size / 2) * this.#scale;
      ctx.strokeStyle = this.#brush.tool === "eraser" ? "#8cf" : "#fff";
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.arc(this.#pointer[0] - box.left, this.#pointer[1] - box.top, Math.max(1, radius), 0, Math.PI * 2);
      ctx.stroke();
      if (this.#brush.hardness < 1) {
        ctx.setLineDash([3, 3]);
        ctx.beginPath();
        ctx.arc(this.#pointer[0] - box.left, this.#pointer[1] - box.top, Math.max(1, radius * this.#brush.hardness), 0, Math.PI * 2);
        ctx.stroke();
        ctx.setLineDash([]);
      }
    }
  }

  /** The mask in the overlay colour: two whole-picture passes, so only after the mask changed, not per hover or zoom frame. */
  #retint(): void {
    const tint = this.#tinted.getContext("2d")!;
    tint.globalCompositeOperation = "copy";
    tint.drawImage(this.#layer.canvas, 0, 0);
    tint.globalCompositeOperation = "source-in";
    tint.fillStyle = "#ff3b6b";
    tint.fillRect(0, 0, this.#tinted.width, this.#tinted.height);
    this.#tintedRevision = this.#layer.revision;
  }

  async #save(): Promise<void> {
    this.#endStroke();
    this.#saving = true;
    try {
      const png = await this.#layer.toPng();
      this.#saving = false;
      this.#close(png);
    } catch (error) {
      // Keep the painter, and the work in it, open: closing would drop the mask as a cancel does.
      this.#saving = false;
      this.#root.querySelector('[data-show="info"]')!.textContent = `Could not encode the mask: ${(error as Error).message}`;
    }
  }

  #close(result: Blob | undefined): void {
    window.removeEventListener("keydown", this.#onKey, true);
    window.removeEventListener("keyup", this.#onKeyUp, true);
    window.removeEventListener("resize", this.#onResize);
    window.removeEventListener("blur", this.#onBlur);
    cancelAnimationFrame(this.#frame);
    this.#select?.dispose();
    this.#root.remove();
    this.done(result);
  }
}

/** A field the user types text into, where letters and brackets are text rather than shortcuts. */
function isTextEntry(target: EventTarget | null): boolean {
  if (target instanceof HTMLTextAreaElement) return true;
  if (target instanceof HTMLElement && target.isContentEditable) return true;
  return target instanceof HTMLInputElement && !["range", "checkbox", "radio", "button", "submit", "color"].includes(target.type);
}
