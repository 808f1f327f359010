/**
 * The editor in a real Chromium against a real server on 127.0.0.1: the client is built fresh with
 * vite into a temp folder so a stale dist can never pass. Screenshots of the main states go to
 * test-results/screenshots/.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { build } from "vite";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../server/maskflow-server.ts";
import { api, startTestServer } from "../helpers/test-server.ts";
import { type EditorPage, launchBrowser, openEditor as openEditorAt, pointInWidget, redrawCanvas } from "./editor-page.ts";

const SCREENSHOTS = path.resolve("test-results/screenshots");

let server: RunningServer;
let browser: Browser;
const temporary: string[] = [];

/** LoadImage → ResizeImage → SaveImage: runs without any model. */
function pipeline(imageName: string, width = 64) {
  return {
    format: "maskflow-workflow",
    version: 1,
    nodes: [
      { id: "1", type: "LoadImage", inputs: { image: imageName }, ui: { pos: [40, 60] } },
      { id: "2", type: "ResizeImage", inputs: { image: ["1", "image"], width, height: 48, mode: "stretch", kernel: "lanczos3" }, ui: { pos: [380, 60] } },
      { id: "3", type: "SaveImage", inputs: { images: ["2", "image"], filename_prefix: "browser" }, ui: { pos: [720, 60] } },
    ],
  };
}

async function uploadPng(name: string, width: number, height: number): Promise<string> {
  const png = await sharp({ create: { width, height, channels: 3, background: { r: 90, g: 140, b: 200 } } }).png().toBuffer();
  const form = new FormData();
  form.append("image", new Blob([new Uint8Array(png)], { type: "image/png" }), name);
  const response = await fetch(`${server.url}/api/upload`, { method: "POST", body: form });
  return ((await response.json()) as { name: string }).name;
}

let imageName = "";

beforeAll(async () => {
  const outDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-client-"));
  const shipped = await mkdtemp(path.join(os.tmpdir(), "maskflow-shipped-"));
  temporary.push(outDir, shipped);
  await build({ root: "client", logLevel: "silent", build: { outDir, emptyOutDir: true, sourcemap: false } });
  server = await startTestServer({ clientDir: outDir, shippedWorkflowsDir: shipped });
  imageName = await uploadPng("photo.png", 128, 96);
  const saved = await api(server, "PUT", "/api/workflows/inpaint", pipeline(imageName));
  expect(saved.status).toBe(200);
  browser = await launchBrowser();
  await mkdir(SCREENSHOTS, { recursive: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await Promise.all(temporary.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A fresh browser profile (empty localStorage) on the editor, ready. */
const openEditor = (): Promise<EditorPage> => openEditorAt(browser, server.url);

/** Page coordinates of a point inside a node (node-relative, below the title). */
async function pointInNode(page: Page, id: string, dx: number, dy: number): Promise<[number, number]> {
  return page.evaluate(
    ([nodeId, x, y]) => {
      const app = (window as any).maskflow;
      const node = app.nodeByDocumentId(nodeId);
      return app.toClient([node.pos[0] + x, node.pos[1] + y]);
    },
    [id, dx, dy] as const,
  );
}

const documentOf = (page: Page) => page.evaluate(() => (window as any).maskflow.toDocument());

describe("Maskflow editor in the browser", () => {
  it("opens the default workflow with its nodes on the canvas", async () => {
    const { context, page, errors } = await openEditor();
    const types = await page.evaluate(() => (window as any).maskflow.nodes().map((n: { type: string }) => n.type));
    expect(types).toEqual(["LoadImage", "ResizeImage", "SaveImage"]);
    // The input picture is shown on the LoadImage node.
    await page.waitForFunction(() => (window as any).maskflow.nodeView("1").loaded === 1);
    expect(await page.textContent("#workflow-name")).toBe("inpaint");
    await page.screenshot({ path: path.join(SCREENSHOTS, "01-default-graph.png") });
    expect(errors).toEqual([]);
    await context.close();
  });

  it("adds a node through the search box (double-click on the canvas)", async () => {
    const { context, page } = await openEditor();
    const canvas = (await page.locator("#graph-canvas").boundingBox())!;
    const search = page.locator(".litesearchbox input");
    // Empty canvas (bottom right, below and beside the graph); a slow frame can split a double-click, so try again.
    for (let attempt = 0; attempt < 5 && !(await search.isVisible()); attempt++) {
      await page.mouse.dblclick(canvas.x + canvas.width - 60, canvas.y + canvas.height - 60);
      await search.waitFor({ timeout: 2_000 }).catch(() => {});
    }
    await search.waitFor({ timeout: 5_000 });
    await search.pressSequentially("Invert");
    await page.screenshot({ path: path.join(SCREENSHOTS, "02-search.png") });
    await search.press("Enter");
    await page.waitForFunction(() => (window as any).maskflow.nodes().some((n: { type: string }) => n.type === "InvertMask"));
    const doc = await documentOf(page);
    expect(doc.nodes.map((n: { type: string }) => n.type)).toContain("InvertMask");
    await context.close();
  });

  it("paints a mask with mouse drags, uploads it and adds a LoadMask reading it", async () => {
    const { context, page } = await openEditor();
    const [bx, by] = await pointInWidget(page, "1", "paint mask");
    await page.mouse.click(bx, by);
    const editor = page.locator('[data-testid="mask-editor"]');
    await editor.waitFor({ timeout: 15_000 });
    const box = (await page.locator(".mf-mask-view").boundingBox())!;
    // The 128×96 image is fitted and centred; drag across its middle row, then a short vertical stroke.
    const cx = box.x + box.width / 2;
    const cy = box.y + box.height / 2;
    await page.mouse.move(cx - box.width * 0.2, cy);
    await page.mouse.down();
    await page.mouse.move(cx + box.width * 0.2, cy, { steps: 12 });
    await page.mouse.up();
    await page.keyboard.press("]");
    await page.mouse.move(cx, cy - box.height * 0.1);
    await page.mouse.down();
    await page.mouse.move(cx, cy + box.height * 0.1, { steps: 6 });
    await page.mouse.up();
    // Undo then redo the second stroke through the shortcuts.
    await page.keyboard.press("Control+z");
    await page.keyboard.press("Control+Shift+z");
    await page.screenshot({ path: path.join(SCREENSHOTS, "03-mask-painter.png") });
    await page.keyboard.press("Enter");
    await editor.waitFor({ state: "detached" });

    const maskFile = await page.waitForFunction(() => {
      const app = (window as any).maskflow;
      const node = app.nodes().find((n: { type: string }) => n.type === "LoadMask");
      const file = node?.widgets.find((w: { name: string }) => w.name === "image")?.value;
      return file || undefined;
    });
    const name = (await maskFile.jsonValue()) as string;
    expect(name).toMatch(/mask.*\.png$/);
    const doc = await documentOf(page);
    const loadMask = doc.nodes.find((n: { type: string }) => n.type === "LoadMask");
    expect(loadMask.inputs).toMatchObject({ image: name, channel: "luminance" });

    const response = await fetch(`${server.url}/api/view?filename=${encodeURIComponent(name)}&type=input`);
    expect(response.status).toBe(200);
    const { data, info } = await sharp(Buffer.from(await response.arrayBuffer())).greyscale().raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([128, 96]);
    const at = (x: number, y: number) => data[y * info.width + x];
    expect(at(64, 48)).toBeGreaterThan(200); // under the drag
    expect(at(40, 48)).toBeGreaterThan(200);
    expect(at(2, 2)).toBeLessThan(20); // far from it
    expect(at(125, 93)).toBeLessThan(20);
    await page.screenshot({ path: path.join(SCREENSHOTS, "04-mask-wired.png") });
    await context.close();
  });

  it("paints a 2048×2048 picture without whole-mask read-backs per move or zoom step, its keys kept from the graph", async () => {
    const bigName = await uploadPng("big.png", 2048, 2048);
    const { context, page, errors } = await openEditor();
    await page.evaluate((doc) => (window as any).maskflow.loadDocument(doc, "big"), pipeline(bigName));
    // Widgets get their places when the node is drawn with its picture.
    await page.waitForFunction(() => (window as any).maskflow.nodeView("1").loaded === 1, null, { timeout: 10_000 });
    await redrawCanvas(page);
    // The click that opens the painter also selects Load Image on the graph behind it.
    const [bx, by] = await pointInWidget(page, "1", "paint mask");
    await page.mouse.click(bx, by);
    const editor = page.locator('[data-testid="mask-editor"]');
    await editor.waitFor({ timeout: 15_000 });
    await page.evaluate(() => {
      const probe = window as unknown as { __wholeMaskReads: number };
      probe.__wholeMaskReads = 0;
      const read = CanvasRenderingContext2D.prototype.getImageData;
      CanvasRenderingContext2D.prototype.getImageData = function (this: CanvasRenderingContext2D, ...args: Parameters<typeof read>) {
        if (args[2] * args[3] >= 2048 * 2048) probe.__wholeMaskReads++;
        return read.apply(this, args);
      };
    });

    // Keys the painter has no use for stay in the painter: Delete must not remove the selected node behind it.
    await page.evaluate(() => {
      const app = (window as any).maskflow;
      app.canvas.selectNode(app.nodeByDocumentId("1"));
      app.canvasElement.focus();
    });
    await page.keyboard.press("Delete");
    await page.keyboard.press("Backspace");
    expect(await page.evaluate(() => (window as any).maskflow.nodes().length)).toBe(3);
    // Shortcuts still work once a toolbar slider has focus.
    await page.locator('[data-control="size"]').focus();
    await page.keyboard.press("e");
    expect(await editor.getAttribute("data-tool")).toBe("eraser");
    await page.keyboard.press("b");
    expect(await editor.getAttribute("data-tool")).toBe("brush");

    const box = (await page.locator(".mf-mask-view").boundingBox())!;
    const cx = box.x + box.width / 2;
    const cy = box.y + box.height / 2;
    await page.mouse.move(cx, cy);
    for (let step = 0; step < 12; step++) await page.mouse.wheel(0, -60);
    await page.mouse.down();
    await page.mouse.move(cx + 150, cy, { steps: 30 });
    await page.mouse.up();
    const reads = await page.evaluate(() => (window as unknown as { __wholeMaskReads: number }).__wholeMaskReads);
    // One undo snapshot and one coverage count for the stroke; none for the zoom steps or the moves.
    expect(reads).toBeLessThanOrEqual(2);

    await page.keyboard.press("Enter");
    await editor.waitFor({ state: "detached", timeout: 15_000 });
    const maskFile = await page.waitForFunction(() => {
      const node = (window as any).maskflow.nodes().find((n: { type: string }) => n.type === "LoadMask");
      return node?.widgets.find((w: { name: string }) => w.name === "image")?.value || undefined;
    });
    const name = (await maskFile.jsonValue()) as string;
    const types = await page.evaluate(() => (window as any).maskflow.nodes().map((n: { type: string }) => n.type));
    expect(types.sort()).toEqual(["LoadImage", "LoadMask", "ResizeImage", "SaveImage"]);
    const response = await fetch(`${server.url}/api/view?filename=${encodeURIComponent(name)}&type=input`);
    const { data, info } = await sharp(Buffer.from(await response.arrayBuffer())).greyscale().raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([2048, 2048]);
    expect(data[1024 * 2048 + 1030]).toBeGreaterThan(200); // on the stroke, which starts at the zoom centre
    expect(data[10 * 2048 + 10]).toBeLessThan(20);
    expect(errors).toEqual([]);
    await context.close();
  });

  it("queues the graph with the button and shows the output on the SaveImage node", async () => {
    const { context, page, errors } = await openEditor();
    await page.click("#queue-button");
    await page.waitForFunction(() => (window as any).maskflow.nodeView("3")?.loaded === 1, null, { timeout: 20_000 });
    const view = await page.evaluate(() => (window as any).maskflow.nodeView("3"));
    expect(view.images[0]).toMatch(/\/api\/view\?filename=browser.*\.png/);
    // Clicking the picture opens it full size.
    // The node grows to fit its picture after it loads: aim again until the click lands on the picture.
    const viewer = page.locator('[data-testid="image-viewer"] img');
    for (let attempt = 0; attempt < 10 && !(await viewer.isVisible()); attempt++) {
      const [ix, iy] = await pointInNode(page, "3", 130, 160);
      await page.mouse.click(ix, iy);
      await viewer.waitFor({ timeout: 1_000 }).catch(() => {});
    }
    await viewer.waitFor({ timeout: 5_000 });
    await page.screenshot({ path: path.join(SCREENSHOTS, "06-image-viewer.png") });
    await page.keyboard.press("Escape");
    await page.click("#toggle-queue");
    await page.locator(".mf-job.mf-status-success").first().waitFor({ timeout: 15_000 });
    await page.screenshot({ path: path.join(SCREENSHOTS, "05-after-run.png") });
    expect(errors).toEqual([]);
    await context.close();
  });

  it("marks the offending node when the server rejects the graph", async () => {
    const { context, page } = await openEditor();
    await page.evaluate((doc) => (window as any).maskflow.loadDocument(doc, "broken"), pipeline(imageName, 0));
    await page.keyboard.press("Control+Enter");
    await page.waitForFunction(() => (window as any).maskflow.nodeView("2").errors.length > 0, null, { timeout: 10_000 });
    const errors = await page.evaluate(() => ["1", "2", "3"].map((id) => (window as any).maskflow.nodeView(id).errors));
    expect(errors[0]).toEqual([]);
    expect(errors[1].join(" ")).toMatch(/width/);
    expect(errors[2]).toEqual([]);
    await page.screenshot({ path: path.join(SCREENSHOTS, "07-validation-error.png") });
    await context.close();
  });

  it("keeps the graph across a reload and saves it on the server", async () => {
    const { context, page } = await openEditor();
    await page.evaluate(() => {
      const app = (window as any).maskflow;
      app.addNode("GrowMask", [60, 420]);
      app.nodeByDocumentId("2").pos = [400, 120];
    });
    const before = await documentOf(page);
    await page.evaluate(() => (window as any).maskflow.persist());
    await page.reload();
    await page.waitForFunction(() => (window as any).maskflow?.nodes().length === 4, null, { timeout: 15_000 });
    const after = await documentOf(page);
    expect(after.nodes).toEqual(before.nodes);

    page.once("dialog", (dialog) => void dialog.accept("kept-graph"));
    await page.click("#save-workflow");
    await expect.poll(async () => (await api(server, "GET", "/api/workflows/kept-graph")).status).toBe(200);
    const stored = (await api(server, "GET", "/api/workflows/kept-graph")).body;
    expect(stored.nodes).toEqual(before.nodes);
    await context.close();
  });

  it("restores the graph carried by a dropped SaveImage PNG", async () => {
    const run = await api(server, "POST", "/api/prompt", { workflow: pipeline(imageName, 32) });
    expect(run.status).toBe(200);
    await expect.poll(async () => (await api(server, "GET", `/api/history/${run.body.id}`)).status, { timeout: 20_000 }).toBe(200);
    const history = (await api(server, "GET", `/api/history/${run.body.id}`)).body;
    const ref = history.outputs["3"].images[0];
    const png = Buffer.from(await (await fetch(`${server.url}/api/view?filename=${ref.filename}&type=output`)).arrayBuffer());

    const { context, page } = await openEditor();
    await page.evaluate(() => (window as any).maskflow.newGraph());
    expect(await page.evaluate(() => (window as any).maskflow.nodes().length)).toBe(0);
    const box = (await page.locator("#graph-canvas").boundingBox())!;
    await page.evaluate(
      ({ base64, x, y }) => {
        const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "result.png", { type: "image/png" }));
        const canvas = document.querySelector("#graph-canvas")!;
        canvas.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, clientX: x, clientY: y, bubbles: true, cancelable: true }));
      },
      { base64: png.toString("base64"), x: box.x + 200, y: box.y + 200 },
    );
    await page.waitForFunction(() => (window as any).maskflow.nodes().length === 3, null, { timeout: 10_000 });
    const doc = await documentOf(page);
    expect(doc.nodes.map((n: { id: string; type: string }) => `${n.id}:${n.type}`)).toEqual(["1:LoadImage", "2:ResizeImage", "3:SaveImage"]);
    expect(doc.nodes[1].inputs).toMatchObject({ image: ["1", "image"], width: 32, height: 48 });
    await page.screenshot({ path: path.join(SCREENSHOTS, "08-png-dropped.png") });
    await context.close();
  });
});
