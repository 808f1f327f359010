/**
 * The shipped default workflow (workflows/inpaint.json) in a real Chromium against a real server
 * on 127.0.0.1 that runs the tiny fp32 model on the local ONNX engine: first visit, a run with
 * progress and live previews, cancelling a run, and the server going away and coming back on the
 * same port. Screenshots go to test-results/screenshots/default-*.png.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { build } from "vite";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxEngine } from "../../server/engines/onnx/onnx-engine.ts";
import type { RunningServer } from "../../server/maskflow-server.ts";
import { ensureTinyModels, writeTinyModel } from "../fixtures/make-tiny-models.ts";
import { api, startTestServer } from "../helpers/test-server.ts";
import {
  type EditorPage,
  installPaintProbe,
  launchBrowser,
  openEditor,
  paintedPreviewCount,
  paintedPreviewDraws,
  paintedProgress,
  pointInWidget,
  redrawCanvas,
} from "./editor-page.ts";

const SCREENSHOTS = path.resolve("test-results/screenshots");
/** Node ids of workflows/inpaint.json. */
const LOAD_IMAGE = "1";
const SCHEDULER = "4";
const INPAINT = "5";
const SAVE_IMAGE = "6";

let server: RunningServer;
let browser: Browser;
let engine: OnnxEngine;
let clientDir = "";
let dataDir = "";
/**
 * A wider tiny model (still seeded noise, a few hundred kB) for the cancel test only: the fixture
 * runs 150 steps in about 0.3 s, too short to press Stop reliably; this one takes a few seconds.
 * It is the model folder "slow-model" of the engine's models folder, for a Load Checkpoint to name.
 */
let modelsDir = "";
const SLOW_MODEL = "slow-model";
const temporary: string[] = [];

beforeAll(async () => {
  clientDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-client-"));
  dataDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-data-"));
  modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-models-"));
  temporary.push(clientDir, dataDir, modelsDir);
  const [models] = await Promise.all([
    ensureTinyModels(),
    writeTinyModel(path.join(modelsDir, SLOW_MODEL), { variant: "fp32", unetWidth: 96, unetDepth: 6, seed: 97 }),
    build({ root: "client", logLevel: "silent", build: { outDir: clientDir, emptyOutDir: true, sourcemap: false } }),
  ]);
  engine = new OnnxEngine({ defaultModelDir: models.fp32, modelsDir, threads: 1 });
  // No shippedWorkflowsDir: the server reads the real workflows/ folder, so "inpaint" is the shipped one.
  server = await startTestServer({ clientDir, dataDir, engines: { local: engine } });
  browser = await launchBrowser();
  await mkdir(SCREENSHOTS, { recursive: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await engine?.release();
  await Promise.all(temporary.map((dir) => rm(dir, { recursive: true, force: true })));
});

const open = (): Promise<EditorPage> => openEditor(browser, server.url);

async function clickQueueAndWaitForOutput({ page }: EditorPage): Promise<string> {
  await page.click("#queue-button");
  const handle = await page.waitForFunction(
    (id) => {
      const view = (window as any).maskflow.nodeView(id);
      return view?.loaded === 1 ? view.images[0] : undefined;
    },
    SAVE_IMAGE,
    { timeout: 30_000 },
  );
  return (await handle.jsonValue()) as string;
}

/** Types a value into LiteGraph's "Value" prompt, which a click on a number or text widget opens. */
async function enterWidgetValue({ page }: EditorPage, nodeId: string, widget: string, value: string): Promise<void> {
  const [x, y] = await pointInWidget(page, nodeId, widget);
  await page.mouse.click(x, y);
  const input = page.locator(".graphdialog input.value");
  await input.waitFor({ timeout: 10_000 });
  await input.fill(value);
  await input.press("Enter");
  await input.waitFor({ state: "detached", timeout: 10_000 });
}

describe("the shipped default workflow in the browser, on the tiny model", () => {
  it("opens workflows/inpaint.json on a first visit, with the example picture on Load Image", async () => {
    const editor = await open();
    const { page, errors } = editor;
    expect(await page.textContent("#workflow-name")).toBe("inpaint");
    const nodes = await page.evaluate(() =>
      (window as any).maskflow.nodes().map((n: { id: number; type: string; title: string }) => `${n.id}:${n.type}:${n.title}`),
    );
    expect(nodes).toEqual([
      "1:LoadImage:Load Image",
      "2:LoadMask:Load Mask",
      "3:Prompt:Prompt",
      "4:Scheduler:Scheduler",
      "5:Inpaint:Inpaint",
      "6:SaveImage:Save Image",
    ]);
    // The example picture is served from the shipped examples and drawn on the node.
    await page.waitForFunction((id) => (window as any).maskflow.nodeView(id)?.loaded === 1, LOAD_IMAGE, { timeout: 10_000 });
    const shown = await page.evaluate((id) => (window as any).maskflow.nodeView(id).images[0] as string, LOAD_IMAGE);
    expect(shown).toMatch(/^\/api\/view\?filename=examples%2Froom\.png&type=input/);
    const natural = await page.evaluate(async (url) => {
      const image = new Image();
      image.src = url;
      await image.decode();
      return [image.naturalWidth, image.naturalHeight];
    }, shown);
    expect(natural).toEqual([512, 512]);
    await page.screenshot({ path: path.join(SCREENSHOTS, "default-first-open.png") });

    // The image combo offers the shipped example: click it and read LiteGraph's menu.
    const [cx, cy] = await pointInWidget(page, LOAD_IMAGE, "image");
    await page.mouse.click(cx, cy);
    const entries = page.locator(".litecontextmenu .litemenu-entry");
    await entries.first().waitFor({ timeout: 10_000 });
    expect(await entries.allTextContents()).toContain("examples/room.png");
    await page.keyboard.press("Escape");
    expect(errors).toEqual([]);
    await editor.context.close();
  });

  it("queues the default graph: progress step/total and live previews on Inpaint, a 512×512 PNG on Save Image", async () => {
    const editor = await open();
    const { page, errors } = editor;
    await installPaintProbe(page);
    const url = await clickQueueAndWaitForOutput(editor);
    expect(url).toMatch(/^\/api\/view\?filename=inpaint_[^&]*\.png&type=output/);
    // The Inpaint node shows its own result too (a preview in temp/).
    const inpaintView = await page.evaluate((id) => (window as any).maskflow.nodeView(id), INPAINT);
    expect(inpaintView.images).toHaveLength(1);
    expect(inpaintView.images[0]).toMatch(/type=temp/);

    // What the canvas painted while it ran: the "step / total" text of the progress bar (the model's four
    // sessions loading first, then the 25 steps), and preview frames.
    const progress = await paintedProgress(page);
    const steps = progress.filter(([, total]) => total === 25);
    expect(steps.length).toBeGreaterThan(0);
    for (const [step, total] of progress) {
      expect([4, 25]).toContain(total);
      expect(step).toBeGreaterThanOrEqual(1);
      expect(step).toBeLessThanOrEqual(total);
    }
    expect(await paintedPreviewCount(page)).toBeGreaterThan(0);
    // After the run the progress bar and the preview are gone (a redraw paints neither); the output stays.
    await page.waitForFunction((id) => (window as any).maskflow.nodeView(id).progress === undefined, INPAINT, { timeout: 10_000 });
    await redrawCanvas(page);
    const previewDraws = await paintedPreviewDraws(page);
    const progressTexts = (await paintedProgress(page)).length;
    await redrawCanvas(page);
    expect(await paintedPreviewDraws(page)).toBe(previewDraws);
    expect((await paintedProgress(page)).length).toBe(progressTexts);

    const response = await fetch(server.url + url);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/image\/png/);
    const meta = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", 512, 512]);

    await page.screenshot({ path: path.join(SCREENSHOTS, "default-after-run.png") });
    await page.click("#toggle-queue");
    await page.locator(".mf-job.mf-status-success").first().waitFor({ timeout: 10_000 });
    await page.screenshot({ path: path.join(SCREENSHOTS, "default-after-run-queue.png") });
    expect(errors).toEqual([]);
    await editor.context.close();
  });

  it("stops a 150-step run from the queue panel: the job ends interrupted and the panel says so", async () => {
    const editor = await open();
    const { page, errors } = editor;
    await installPaintProbe(page);
    await enterWidgetValue(editor, SCHEDULER, "steps", "150");
    // The slow model through a Load Checkpoint wired to Inpaint's model socket, chosen in its combo.
    const loader = await page.evaluate((id) => {
      const app = (window as any).maskflow;
      const inpaint = app.nodeByDocumentId(id);
      const node = app.addNode("CheckpointLoader", [inpaint.pos[0], inpaint.pos[1] + inpaint.size[1] + 60]);
      node.connect(0, inpaint, inpaint.inputs.findIndex((input: { name: string }) => input.name === "model"));
      return String(node.id);
    }, INPAINT);
    await redrawCanvas(page);
    const [cx, cy] = await pointInWidget(page, loader, "checkpoint");
    await page.mouse.click(cx, cy);
    await page.locator(".litecontextmenu .litemenu-entry", { hasText: SLOW_MODEL }).click({ timeout: 10_000 });
    const doc = await page.evaluate(() => (window as any).maskflow.toDocument());
    expect(doc.nodes.find((n: { id: string }) => n.id === SCHEDULER).inputs.steps).toBe(150);
    expect(doc.nodes.find((n: { id: string }) => n.id === INPAINT).inputs.model).toEqual([loader, "model"]);
    expect(doc.nodes.find((n: { id: string }) => n.id === loader).inputs).toEqual({ checkpoint: SLOW_MODEL });

    await page.click("#toggle-queue");
    await page.click("#queue-button");
    // Wait until the Inpaint node is visibly sampling, then press Stop on the running job.
    const sampling = async () => (await paintedProgress(page)).filter(([, total]) => total === 150).length;
    await expect.poll(sampling, { timeout: 20_000, interval: 50 }).toBeGreaterThan(0);
    await page.screenshot({ path: path.join(SCREENSHOTS, "default-running.png") });
    await page.locator('.mf-job.mf-running button[data-do="interrupt"]').click({ timeout: 10_000 });

    const stopped = page.locator(".mf-job.mf-status-interrupted").first();
    await stopped.waitFor({ timeout: 15_000 });
    expect(await stopped.textContent()).toMatch(/■[\s\S]*interrupted by the user/);
    await page.locator(".mf-notice", { hasText: "Run interrupted" }).waitFor({ timeout: 10_000 });
    // The panel may render one refresh with the job both running and in history; the next refresh settles it.
    await expect.poll(() => page.locator(".mf-job.mf-running").count(), { timeout: 10_000 }).toBe(0);
    await page.screenshot({ path: path.join(SCREENSHOTS, "default-interrupted.png") });
    const jobId = await stopped.getAttribute("data-job");
    const entry = (await api(server, "GET", `/api/history/${jobId}`)).body;
    expect(entry.status).toBe("interrupted");
    expect(entry.outputs[SAVE_IMAGE]?.images ?? []).toEqual([]);
    // It stopped part-way: no 150 / 150 (before the steps, only the model's load, n / 4, was shown).
    const painted = await paintedProgress(page);
    expect(painted.every(([, total]) => total === 150 || total === 4)).toBe(true);
    expect(Math.max(...painted.filter(([, total]) => total === 150).map(([step]) => step))).toBeLessThan(150);
    // The node's progress bar is cleared.
    await page.waitForFunction((id) => (window as any).maskflow.nodeView(id).progress === undefined, INPAINT, { timeout: 10_000 });
    expect(errors).toEqual([]);
    await editor.context.close();
  });

  it("shows the server-away banner while the server is down and queues again once it is back on the same port", async () => {
    const editor = await open();
    const { page, errors } = editor;
    const banner = page.locator("#connection-banner");
    await expect.poll(() => banner.isHidden(), { timeout: 10_000 }).toBe(true);

    const { port } = server;
    await server.close();
    await banner.waitFor({ state: "visible", timeout: 10_000 });
    expect(await banner.textContent()).toMatch(/Server unreachable/);
    await page.screenshot({ path: path.join(SCREENSHOTS, "default-server-away.png") });

    server = await startTestServer({ port, clientDir, dataDir, engines: { local: engine } });
    expect(server.port).toBe(port);
    await banner.waitFor({ state: "hidden", timeout: 15_000 });
    const url = await clickQueueAndWaitForOutput(editor);
    const meta = await sharp(Buffer.from(await (await fetch(server.url + url)).arrayBuffer())).metadata();
    expect([meta.width, meta.height]).toEqual([512, 512]);
    expect(errors).toEqual([]);
    await editor.context.close();
  });
});
