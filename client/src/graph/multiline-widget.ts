/**
 * A multi-line text widget for prompts: the text is drawn wrapped inside the node, and a click
 * opens a textarea laid exactly over it (scaled with the canvas) that edits the value live.
 * LiteGraph has no textarea widget of its own; ComfyUI solves the same with DOM widgets.
 */
import { LGraphCanvas, type LGraphNode, type IWidget } from "@comfyorg/litegraph";
import { wrapText } from "./wrap-text.ts";

const HEIGHT = 84;
/** Lines of the prompt that fit in the box at 15 px each. */
const VISIBLE_LINES = 5;
let openEditor: HTMLTextAreaElement | undefined;

export function addMultilineWidget(node: LGraphNode, name: string, value: string): void {
  const widget = {
    type: "multiline",
    name,
    value,
    y: 0,
    options: {},
    computeSize(width?: number): [number, number] {
      return [width ?? 200, HEIGHT];
    },
    draw(ctx: CanvasRenderingContext2D, _node: LGraphNode, width: number, y: number): void {
      const margin = 15;
      ctx.fillStyle = "#1b1b1b";
      ctx.strokeStyle = "#555";
      ctx.beginPath();
      ctx.roundRect(margin, y, width - margin * 2, HEIGHT - 4, 6);
      ctx.fill();
      ctx.stroke();
      ctx.save();
      ctx.beginPath();
      ctx.rect(margin, y, width - margin * 2, HEIGHT - 4);
      ctx.clip();
      ctx.font = "12px sans-serif";
      ctx.textAlign = "left";
      const text = String(this.value ?? "");
      ctx.fillStyle = text ? "#ddd" : "#777";
      const lines = wrapText(ctx, text || name, width - margin * 2 - 12, VISIBLE_LINES);
      lines.forEach((line, i) => ctx.fillText(line, margin + 6, y + 16 + i * 15));
      ctx.restore();
      if (text) {
        // The input's name, small in the corner, so two prompt boxes stay tellable apart.
        ctx.font = "10px sans-serif";
        ctx.textAlign = "right";
        ctx.fillStyle = "#888";
        ctx.fillText(name, width - margin - 6, y + HEIGHT - 10);
      }
    },
    mouse(event: { type: string }, _pos: [number, number], target: LGraphNode): boolean {
      if (event.type === "pointerdown") {
        editInPlace(target, this as unknown as IWidget);
        return true;
      }
      return false;
    },
  };
  node.addCustomWidget(widget as unknown as IWidget);
}

function editInPlace(node: LGraphNode, widget: IWidget): void {
  const canvas = LGraphCanvas.active_canvas;
  if (!canvas) return;
  openEditor?.blur();
  const scale = canvas.ds.scale;
  const [x, y] = canvas.ds.convertOffsetToCanvas([node.pos[0] + 15, node.pos[1] + widget.y]);
  const box = canvas.canvas.getBoundingClientRect();
  const textarea = document.createElement("textarea");
  textarea.className = "mf-multiline-editor";
  textarea.value = String(widget.value ?? "");
  Object.assign(textarea.style, {
    left: `${box.left + x}px`,
    top: `${box.top + y}px`,
    width: `${(node.size[0] - 30) * scale}px`,
    height: `${(HEIGHT - 4) * scale}px`,
    fontSize: `${12 * scale}px`,
  });
  const commit = () => {
    widget.value = textarea.value;
    node.setDirtyCanvas(true, true);
  };
  textarea.addEventListener("input", commit);
  textarea.addEventListener("keydown", (event) => {
    const queueKeys = event.key === "Enter" && (event.ctrlKey || event.metaKey);
    // Ctrl+Enter commits the text and goes on to the page, which queues the run as it does everywhere else.
    if (!queueKeys) event.stopPropagation();
    if (event.key === "Escape" || queueKeys) textarea.blur();
  });
  textarea.addEventListener("blur", () => {
    commit();
    textarea.remove();
    if (openEditor === textarea) openEditor = undefined;
  });
  document.body.append(textarea);
  openEditor = textarea;
  setTimeout(() => textarea.focus(), 0);
}
