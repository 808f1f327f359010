/**
 * Load Checkpoint in the editor, as a ComfyUI user expects it, in a real Chromium against a real server on 127.0.0.1
 * whose local engine reads a models folder made here (checkpoint files in checkpoints/, the tiny ONNX model as a model
 * folder): the combo lists that folder and asks again when opened, the MODEL link into Inpaint is made by dragging,
 * a workflow naming Inpaint's model by text opens with a Load Checkpoint wired in (and runs), and a checkpoint's build
 * shows its progress on the node. Screenshots: /tmp/checkpoint-loader.png (the wiring), /tmp/checkpoint-progress.png.
 */
import { cp, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Browser, Page, WebSocketRoute } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../server/maskflow-server.ts";
import { ensureTinyModels } from "../fixtures/make-tiny-models.ts";
import { type CheckpointEditor, SCREENSHOTS, type ShippedWorkflow, startCheckpointEditor } from "./checkpoint-editor.ts";
import {
  boxesApart,
  boxInside,
  closeMenu,
  comboEntries,
  documentOf,
  drag,
  type EditorPage,
  installPaintProbe,
  nodeLayout,
  nodeOf,
  openEditor,
  openEditorRecording,
  paintedTexts,
  pointOnSocket,
  redrawCanvas,
  type SavedDocument,
} from "./editor-page.ts";

const WIRING_SHOT = "/tmp/checkpoint-loader.png";
const PROGRESS_SHOT = "/tmp/checkpoint-progress.png";
/** Node ids of workflows/inpaint.json. */
const LOAD_IMAGE = "1";
const SCHEDULER = "4";
const INPAINT = "5";
const SAVE_IMAGE = "6";
/** The id a Load Checkpoint added to workflows/inpaint.json gets: the next after its six. */
const ADDED_LOADER = "7";
/** What GET /api/models/checkpoints lists for the folder below: checkpoint files, then model folders. */
const LISTED = ["tiny.safetensors", "v1-5-pruned-emaonly.safetensors", "tiny-inpaint"];

let setup: CheckpointEditor | undefined;
let server: RunningServer;
let browser: Browser;
let modelsDir = "";
let shippedInpaint: ShippedWorkflow;

beforeAll(async () => {
  // Beside tiny.safetensors, a name that is only listed and a file that is no checkpoint; the tiny ONNX model as a
  // model folder. No shippedWorkflowsDir: the editor opens the real workflows/inpaint.json first.
  setup = await startCheckpointEditor({
    defaultModel: "tiny-inpaint",
    fill: async (dir) => {
      await writeFile(path.join(dir, "checkpoints", "v1-5-pruned-emaonly.safetensors"), "only listed, never run");
      await writeFile(path.join(dir, "checkpoints", "readme.txt"), "not a checkpoint");
      await cp((await ensureTinyModels()).fp32, path.join(dir, "tiny-inpaint"), { recursive: true });
    },
  });
  ({ server, browser, modelsDir, shippedInpaint } = setup);
}, 180_000);

afterAll(async () => {
  await setup?.close();
});

/** workflows/inpaint.json as it was before the MODEL socket: Inpaint naming its model by text. */
function oldWorkflow(model: string): unknown {
  const copy = structuredClone(shippedInpaint);
  copy.nodes.find((node) => node.id === INPAINT)!.inputs.model = model;
  return { ...copy, name: "old-model-text" };
}

/** Opens the editor and loads a document as the Open menu would; the graph drawn once (widgets get their places). */
async function openWith(document: unknown, page?: Page): Promise<EditorPage> {
  const editor = page ? undefined : await openEditor(browser, server.url);
  const target = page ?? editor!.page;
  await target.evaluate((doc) => (window as any).maskflow.loadDocument(doc, "old-model-text"), document);
  await redrawCanvas(target);
  return editor ?? ({ page: target } as EditorPage);
}

describe("Load Checkpoint in the editor", () => {
  it("lists the models folder's checkpoints in its combo, asks the server again when opened, and keeps a name it does not list", async () => {
    const { page, errors, context } = await openWith({
      ...structuredClone(shippedInpaint),
      nodes: [...structuredClone(shippedInpaint).nodes, { id: "20", type: "CheckpointLoader", inputs: { checkpoint: "tiny-inpaint" }, ui: { pos: [380, 560] } }],
    });
    expect(await page.evaluate(() => (window as any).maskflow.checkpoints.list())).toEqual(LISTED);
    expect(await comboEntries(page, "20", "checkpoint")).toEqual(LISTED);
    await closeMenu(page);

    // A checkpoint dropped into the folder while the editor is open: opening the combo offers it.
    await writeFile(path.join(modelsDir, "checkpoints", "added-later.ckpt"), "weights");
    try {
      const entries = await comboEntries(page, "20", "checkpoint");
      expect(entries).toEqual(["added-later.ckpt", ...LISTED]);
      // Choosing one sets the widget, and the document carries it.
      await page.locator(".litecontextmenu .litemenu-entry", { hasText: "v1-5-pruned-emaonly.safetensors" }).click();
      expect(nodeOf(await documentOf(page), "20").inputs).toEqual({ checkpoint: "v1-5-pruned-emaonly.safetensors" });
    } finally {
      await rm(path.join(modelsDir, "checkpoints", "added-later.ckpt"));
    }

    // A name from elsewhere that the server does not list stays, first, so the workflow is not changed behind the user.
    await page.evaluate(() => {
      const node = (window as any).maskflow.nodeByDocumentId("20");
      node.widgets.find((w: { name: string }) => w.name === "checkpoint").value = "from-another-machine.safetensors";
    });
    expect(await comboEntries(page, "20", "checkpoint")).toEqual(["from-another-machine.safetensors", ...LISTED]);
    await page.keyboard.press("Escape");

    // A Load Checkpoint added by hand starts on the first checkpoint, as ComfyUI's does.
    const fresh = await page.evaluate(() => {
      const node = (window as any).maskflow.addNode("CheckpointLoader", [0, 900]);
      return { value: node.widgets.find((w: { name: string }) => w.name === "checkpoint").value, width: node.size[0] };
    });
    expect(fresh.value).toBe("tiny.safetensors");
    expect(fresh.width).toBeGreaterThanOrEqual(340);
    expect(errors).toEqual([]);
    await context.close();
  });

  it("Inpaint's model is an optional MODEL socket that takes Load Checkpoint's model output, and nothing else", async () => {
    const { page, errors, context } = await openWith({
      ...structuredClone(shippedInpaint),
      nodes: [...structuredClone(shippedInpaint).nodes, { id: "20", type: "CheckpointLoader", inputs: { checkpoint: "tiny-inpaint" }, ui: { pos: [380, 560] } }],
    });
    const sockets = await page.evaluate((id) => {
      const app = (window as any).maskflow;
      const inpaint = app.nodeByDocumentId(id);
      const slot = inpaint.inputs.find((input: { name: string }) => input.name === "model");
      const loader = app.nodeByDocumentId("20");
      return {
        input: { type: slot.type, label: slot.label, link: slot.link, widget: inpaint.widgets.some((w: { name: string }) => w.name === "model") },
        output: loader.outputs.map((output: { name: string; type: string }) => [output.name, output.type]),
        colour: (window as any).LGraphCanvas?.link_type_colors?.MODEL ?? app.canvas.constructor.link_type_colors.MODEL,
      };
    }, INPAINT);
    expect(sockets).toEqual({ input: { type: "MODEL", label: "model (optional)", link: null, widget: false }, output: [["model", "MODEL"]], colour: "#b39ddb" });
    const linkedModel = async () => nodeOf(await documentOf(page), INPAINT).inputs.model;
    expect(await linkedModel()).toBeUndefined();

    // An IMAGE output dropped on the MODEL socket does not connect.
    await drag(page, await pointOnSocket(page, LOAD_IMAGE, "output", "image"), await pointOnSocket(page, INPAINT, "input", "model"));
    await redrawCanvas(page);
    expect(await linkedModel()).toBeUndefined();

    // Load Checkpoint's MODEL does (a slow frame can swallow the start of a drag: try again a few times).
    const modelOut = await pointOnSocket(page, "20", "output", "model");
    const modelIn = await pointOnSocket(page, INPAINT, "input", "model");
    for (let attempt = 0; attempt < 3 && (await linkedModel()) === undefined; attempt++) {
      await drag(page, modelOut, modelIn);
      await redrawCanvas(page);
    }
    expect(await linkedModel()).toEqual(["20", "model"]);
    const link = await page.evaluate(() => [...(window as any).maskflow.graph._links.values()].map((l: { type: string; origin_id: number }) => [l.origin_id, l.type]));
    expect(link).toContainEqual([20, "MODEL"]);
    // Linked to its own model, Inpaint needs nothing of the server's default one.
    expect(errors).toEqual([]);
    await context.close();
  });

  it("opens a workflow naming Inpaint's model by text with a Load Checkpoint wired in, left of Inpaint, and queues the link", async () => {
    const editor = await openEditor(browser, server.url);
    const { page, errors, context } = editor;
    // The shipped graph's empty text is just "the server's model": no node is added for it.
    expect(await page.evaluate(() => (window as any).maskflow.nodes().length)).toBe(6);
    expect(nodeOf(await documentOf(page), INPAINT).inputs.model).toBeUndefined();

    await openWith(oldWorkflow("tiny-inpaint"), page);
    const nodes = await page.evaluate(() => (window as any).maskflow.nodes().map((n: { id: number; type: string; title: string }) => `${n.id}:${n.type}:${n.title}`));
    expect(nodes).toContain(`${ADDED_LOADER}:CheckpointLoader:Load Checkpoint`);
    const doc = await documentOf(page);
    expect(nodeOf(doc, ADDED_LOADER)).toMatchObject({ type: "CheckpointLoader", inputs: { checkpoint: "tiny-inpaint" } });
    expect(nodeOf(doc, INPAINT).inputs.model).toEqual([ADDED_LOADER, "model"]);
    const widget = await page.evaluate((id) => (window as any).maskflow.nodeByDocumentId(id).widgets[0].value, ADDED_LOADER);
    expect(widget).toBe("tiny-inpaint");
    await page.locator(".mf-notice", { hasText: '"tiny-inpaint"' }).waitFor({ timeout: 5000 });

    // Placed left of Inpaint, over no other node, and in view.
    const { boxes, view } = await nodeLayout(page);
    const loader = boxes[ADDED_LOADER];
    expect(loader[0] + loader[2]).toBeLessThan(boxes[INPAINT][0]);
    for (const [id, box] of Object.entries(boxes)) if (id !== ADDED_LOADER) expect(boxesApart(loader, box), `over node ${id}`).toBe(true);
    for (const [id, box] of Object.entries(boxes)) expect(boxInside(box, view), `node ${id} out of view`).toBe(true);
    await page.waitForTimeout(300);
    await redrawCanvas(page);
    await page.screenshot({ path: WIRING_SHOT });
    await page.screenshot({ path: path.join(SCREENSHOTS, "checkpoint-loader-wiring.png") });

    // Queue sends the link, and the server runs it on the model folder the loader names.
    const queued = page.waitForRequest((request) => request.method() === "POST" && new URL(request.url()).pathname === "/api/prompt");
    await page.click("#queue-button");
    const sent = (await queued).postDataJSON() as { workflow: SavedDocument };
    expect(nodeOf(sent.workflow, INPAINT).inputs.model).toEqual([ADDED_LOADER, "model"]);
    expect(nodeOf(sent.workflow, ADDED_LOADER)).toMatchObject({ type: "CheckpointLoader", inputs: { checkpoint: "tiny-inpaint" } });
    await page.waitForFunction((id) => (window as any).maskflow.nodeView(id)?.loaded === 1, SAVE_IMAGE, { timeout: 60_000 });
    expect(await page.evaluate((id) => (window as any).maskflow.nodeView(id).errors, ADDED_LOADER)).toEqual([]);
    expect(errors).toEqual([]);
    await context.close();
  });

  it("shows a checkpoint's build on the node with the build's own label, then runs on what it built", async () => {
    // The tiny checkpoint's UNet is slow at 512 × 512 (seconds a step on CPU): a small picture and two steps.
    const workflow = oldWorkflow("tiny.safetensors") as typeof shippedInpaint;
    Object.assign(workflow.nodes.find((node) => node.id === INPAINT)!.inputs, { width: 64, height: 64 });
    Object.assign(workflow.nodes.find((node) => node.id === SCHEDULER)!.inputs, { steps: 2 });
    // The server's events as the page receives them: which node each progress label was for.
    const { page, errors, context, events } = await openEditorRecording(browser, server.url);
    await openWith(workflow, page);
    await installPaintProbe(page);
    await page.click("#queue-button");
    await page.waitForFunction((id) => (window as any).maskflow.nodeView(id)?.loaded === 1, SAVE_IMAGE, { timeout: 90_000 });
    const texts = await paintedTexts(page);
    const buildLabels = texts.filter((text) => /^(reading checkpoint|building )/.test(text));
    expect(buildLabels.length, "no build progress was painted").toBeGreaterThan(0);
    // The label as the build words it ("building unet 12 %"), without its byte counts.
    for (const text of buildLabels) expect(text).toMatch(/^(reading checkpoint|building (unet|vae_encoder|vae_decoder|text_encoder)) \d+ %$/);
    // On the Load Checkpoint node: reading first, then each part built; the building is never shown on Inpaint.
    const progress = events.filter((event) => event.type === "progress" && /^(reading checkpoint|building )/.test(event.data.label ?? ""));
    const onLoader = progress.filter((event) => event.data.node === ADDED_LOADER);
    expect(onLoader[0].data.label).toMatch(/^reading checkpoint /);
    expect(new Set(onLoader.map((event) => /^building (\w+)/.exec(event.data.label!)?.[1]).filter(Boolean))).toEqual(
      new Set(["unet", "vae_encoder", "vae_decoder", "text_encoder"]),
    );
    expect(progress.filter((event) => event.data.label!.startsWith("building ") && event.data.node !== ADDED_LOADER)).toEqual([]);
    expect(await page.evaluate((id) => (window as any).maskflow.nodeView(id).errors, ADDED_LOADER)).toEqual([]);
    expect(errors).toEqual([]);
    await context.close();
  });

  it("draws a long build label in the title bar clear of the title and inside the node", async () => {
    // The server's events pass through here, so one progress event can be held on screen.
    let socket: WebSocketRoute | undefined;
    const { page, errors, context } = await openEditor(browser, server.url, (context) =>
      context.routeWebSocket(/\/ws/, (ws) => {
        ws.connectToServer();
        socket = ws;
      }),
    );
    await openWith(oldWorkflow("tiny.safetensors"), page);
    await expect.poll(() => socket !== undefined, { timeout: 10_000 }).toBe(true);
    // Where each text is drawn, in the node's own coordinates.
    await page.evaluate(() => {
      const drawn: Array<{ text: string; left: number; right: number }> = [];
      (window as any).__drawn = drawn;
      const proto = CanvasRenderingContext2D.prototype;
      const fillText = proto.fillText;
      proto.fillText = function (this: CanvasRenderingContext2D, text: string, x: number, y: number, maxWidth?: number) {
        const width = this.measureText(text).width;
        const left = this.textAlign === "right" || this.textAlign === "end" ? x - width : this.textAlign === "center" ? x - width / 2 : x;
        drawn.push({ text: String(text), left, right: left + width });
        return fillText.call(this, text, x, y, maxWidth);
      } as typeof proto.fillText;
    });
    const label = "building text_encoder 99 %";
    socket!.send(JSON.stringify({ type: "executing", data: { jobId: "held", node: ADDED_LOADER } }));
    socket!.send(JSON.stringify({ type: "progress", data: { jobId: "held", node: ADDED_LOADER, value: 19_214_496, max: 19_218_092, label } }));
    await expect.poll(() => page.evaluate((id) => (window as any).maskflow.nodeView(id).progress?.label, ADDED_LOADER)).toBe(label);
    await redrawCanvas(page);
    const drawn = (await page.evaluate(() => (window as any).__drawn)) as Array<{ text: string; left: number; right: number }>;
    const width = await page.evaluate((id) => (window as any).maskflow.nodeByDocumentId(id).size[0], ADDED_LOADER);
    const progress = drawn.filter((entry) => entry.text === label).at(-1);
    const title = drawn.filter((entry) => entry.text === "Load Checkpoint").at(-1);
    expect(progress, "the label was not drawn as it is").toBeDefined();
    expect(title).toBeDefined();
    expect(progress!.left).toBeGreaterThan(title!.right + 4);
    expect(progress!.right).toBeLessThanOrEqual(width);
    expect(drawn.some((entry) => entry.text.includes("19214496"))).toBe(false);
    await page.screenshot({ path: PROGRESS_SHOT });
    await page.screenshot({ path: path.join(SCREENSHOTS, "checkpoint-loader-progress.png") });
    expect(errors).toEqual([]);
    await context.close();
  });
});
