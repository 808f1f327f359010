/**
 * Load Checkpoint in the editor, as a ComfyUI user expects it, in a real Chromium against a real server on 127.0.0.1
 * whose local engine reads a models folder made here (checkpoint files in checkpoints/, the tiny ONNX model as a model
 * folder): the combo lists that folder and asks again when opened, the MODEL link into Inpaint is made by dragging,
 * a workflow naming Inpaint's model by text opens with a Load Checkpoint wired in (and runs), and a checkpoint's build
 * shows its progress on the node. Screenshots: /tmp/checkpoint-loader.png (the wiring), /tmp/checkpoint-progress.png.
 */
import { cp, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { build } from "vite";
import type { Browser, Page, WebSocketRoute } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxEngine } from "../../server/engines/onnx/onnx-engine.ts";
import type { RunningServer } from "../../server/maskflow-server.ts";
import { ensureTinyCheckpoints } from "../fixtures/make-tiny-checkpoint.ts";
import { ensureTinyModels } from "../fixtures/make-tiny-models.ts";
import { startTestServer } from "../helpers/test-server.ts";
import { type EditorPage, installPaintProbe, launchBrowser, openEditor, paintedTexts, pointInWidget, redrawCanvas } from "./editor-page.ts";

const SCREENSHOTS = path.resolve("test-results/screenshots");
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

interface DocumentNode {
  id: string;
  type: string;
  inputs: Record<string, unknown>;
}
interface Document {
  nodes: DocumentNode[];
}

let server: RunningServer;
let browser: Browser;
let engine: OnnxEngine;
let modelsDir = "";
let shippedInpaint: { nodes: Array<{ id: string; inputs: Record<string, unknown> }> };
const temporary: string[] = [];

beforeAll(async () => {
  const clientDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-client-"));
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-data-"));
  modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-models-"));
  temporary.push(clientDir, dataDir, modelsDir);
  const [models, checkpoints] = await Promise.all([
    ensureTinyModels(),
    ensureTinyCheckpoints(),
    build({ root: "client", logLevel: "silent", build: { outDir: clientDir, emptyOutDir: true, sourcemap: false } }),
  ]);
  await mkdir(path.join(modelsDir, "checkpoints"));
  // A real (tiny) SD 1.5 inpainting checkpoint that builds in about a second, and a name that is only listed.
  await copyFile(checkpoints.singleFile, path.join(modelsDir, "checkpoints", "tiny.safetensors"));
  await writeFile(path.join(modelsDir, "checkpoints", "v1-5-pruned-emaonly.safetensors"), "only listed, never run");
  await writeFile(path.join(modelsDir, "checkpoints", "readme.txt"), "not a checkpoint");
  await cp(models.fp32, path.join(modelsDir, "tiny-inpaint"), { recursive: true });
  engine = new OnnxEngine({ modelsDir, defaultModelDir: path.join(modelsDir, "tiny-inpaint"), threads: 1 });
  // No shippedWorkflowsDir: the editor opens the real workflows/inpaint.json first.
  server = await startTestServer({ clientDir, dataDir, engines: { local: engine } });
  shippedInpaint = JSON.parse(await readFile(path.resolve("workflows/inpaint.json"), "utf8"));
  browser = await launchBrowser();
  await mkdir(SCREENSHOTS, { recursive: true });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await engine?.release();
  await Promise.all(temporary.map((dir) => rm(dir, { recursive: true, force: true })));
});

const documentOf = (page: Page): Promise<Document> => page.evaluate(() => (window as any).maskflow.toDocument());
const nodeOf = (doc: Document, id: string): DocumentNode => doc.nodes.find((node) => node.id === id)!;

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

/** Page coordinates of an input (or output) socket of a node, by slot name. */
function pointOnSocket(page: Page, id: string, side: "input" | "output", name: string): Promise<[number, number]> {
  return page.evaluate(
    ([nodeId, which, slotName]) => {
      const app = (window as any).maskflow;
      const node = app.nodeByDocumentId(nodeId);
      const slots: Array<{ name: string }> = which === "input" ? node.inputs : node.outputs;
      const index = slots.findIndex((slot) => slot.name === slotName);
      if (index < 0) throw new Error(`node ${nodeId} has no ${which} ${slotName}`);
      return app.toClient(node.getConnectionPos(which === "input", index));
    },
    [id, side, name] as const,
  );
}

async function drag(page: Page, from: [number, number], to: [number, number]): Promise<void> {
  await page.mouse.move(from[0], from[1]);
  await page.mouse.down();
  await page.mouse.move(to[0], to[1], { steps: 12 });
  await page.mouse.up();
}

/** The entries of the combo menu a click on a node's widget opens (LiteGraph's context menu), then closes it. */
async function comboEntries(page: Page, nodeId: string, widget: string): Promise<string[]> {
  const [x, y] = await pointInWidget(page, nodeId, widget);
  await page.mouse.click(x, y);
  const entries = page.locator(".litecontextmenu .litemenu-entry");
  await entries.first().waitFor({ timeout: 10_000 });
  return entries.allTextContents();
}

/** Every node's box on the canvas (title bar included) and the visible part of the graph, in graph coordinates. */
function layoutOf(page: Page): Promise<{ boxes: Record<string, [number, number, number, number]>; view: [number, number, number, number] }> {
  return page.evaluate(() => {
    const app = (window as any).maskflow;
    const boxes: Record<string, [number, number, number, number]> = {};
    for (const node of app.graph._nodes) boxes[String(node.id)] = [node.pos[0], node.pos[1] - 30, node.size[0], node.size[1] + 30];
    const [left, top] = app.canvas.ds.convertCanvasToOffset([0, 0]);
    const [right, bottom] = app.canvas.ds.convertCanvasToOffset([app.canvasElement.width, app.canvasElement.height]);
    return { boxes, view: [left, top, right - left, bottom - top] as [number, number, number, number] };
  });
}

const apart = (a: number[], b: number[]) => a[0] + a[2] <= b[0] || b[0] + b[2] <= a[0] || a[1] + a[3] <= b[1] || b[1] + b[3] <= a[1];
const inside = (box: number[], view: number[]) => box[0] >= view[0] && box[1] >= view[1] && box[0] + box[2] <= view[0] + view[2] && box[1] + box[3] <= view[1] + view[3];

describe("Load Checkpoint in the editor", () => {
  it("lists the models folder's checkpoints in its combo, asks the server again when opened, and keeps a name it does not list", async () => {
    const { page, errors, context } = await openWith({
      ...structuredClone(shippedInpaint),
      nodes: [...structuredClone(shippedInpaint).nodes, { id: "20", type: "CheckpointLoader", inputs: { checkpoint: "tiny-inpaint" }, ui: { pos: [380, 560] } }],
    });
    expect(await page.evaluate(() => (window as any).maskflow.checkpoints.list())).toEqual(LISTED);
    expect(await comboEntries(page, "20", "checkpoint")).toEqual(LISTED);
    await page.keyboard.press("Escape");
    await page.locator(".litecontextmenu").waitFor({ state: "detached", timeout: 5000 }).catch(() => page.mouse.click(5, 5));

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
    const { boxes, view } = await layoutOf(page);
    const loader = boxes[ADDED_LOADER];
    expect(loader[0] + loader[2]).toBeLessThan(boxes[INPAINT][0]);
    for (const [id, box] of Object.entries(boxes)) if (id !== ADDED_LOADER) expect(apart(loader, box), `over node ${id}`).toBe(true);
    for (const [id, box] of Object.entries(boxes)) expect(inside(box, view), `node ${id} out of view`).toBe(true);
    await page.waitForTimeout(300);
    await redrawCanvas(page);
    await page.screenshot({ path: WIRING_SHOT });
    await page.screenshot({ path: path.join(SCREENSHOTS, "checkpoint-loader-wiring.png") });

    // Queue sends the link, and the server runs it on the model folder the loader names.
    const queued = page.waitForRequest((request) => request.method() === "POST" && new URL(request.url()).pathname === "/api/prompt");
    await page.click("#queue-button");
    const sent = (await queued).postDataJSON() as { workflow: Document };
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
    const editor = await openEditor(browser, server.url);
    const { page, errors, context } = editor;
    await page.reload();
    const events: Array<{ type: string; data: { node?: string; label?: string } }> = [];
    page.on("websocket", (socket) =>
      socket.on("framereceived", ({ payload }) => {
        if (typeof payload === "string") events.push(JSON.parse(payload));
      }),
    );
    await page.waitForFunction(() => (window as any).maskflow?.schemas?.length > 0, null, { timeout: 15_000 });
    await page.evaluate(() => (window as any).maskflow.ready);
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
    const context = await browser.newContext({ viewport: { width: 1400, height: 860 } });
    await context.route(/^(?!https?:\/\/127\.0\.0\.1|ws:\/\/127\.0\.0\.1|blob:|data:)/, (route) => route.abort());
    let socket: WebSocketRoute | undefined;
    await context.routeWebSocket(/\/ws/, (ws) => {
      ws.connectToServer();
      socket = ws;
    });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(server.url);
    await page.waitForFunction(() => (window as any).maskflow?.schemas?.length > 0 && (window as any).maskflow.nodes().length > 0, null, { timeout: 15_000 });
    await page.evaluate(() => (window as any).maskflow.ready);
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
