/**
 * What the editor tells a user before and after a run, checked on the page in a real Chromium
 * against a real server on 127.0.0.1 that, like a fresh install, has no local model: the Load Mask
 * thumbnail, the "no local model" warnings, error labels wrapped inside their box, the notice when a
 * run is done, the default graph clear of the queue panel, the mask painter's toolbar, and a page load
 * without 404s or console errors. Each test saves a screenshot to test-results/screenshots/feedback-*.png.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { build } from "vite";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngines, type Engines } from "../../server/engines/create-engines.ts";
import type { RunningServer } from "../../server/maskflow-server.ts";
import { api, startTestServer } from "../helpers/test-server.ts";
import { type EditorPage, installPaintProbe, launchBrowser, openEditor, paintedTexts, pointInWidget, redrawCanvas } from "./editor-page.ts";

const SCREENSHOTS = path.resolve("test-results/screenshots");
/** Node ids of workflows/inpaint.json, the default graph. */
const LOAD_IMAGE = "1";
const LOAD_MASK = "2";
const INPAINT = "5";

let server: RunningServer;
let browser: Browser;
let engines: Engines;
const temporary: string[] = [];

beforeAll(async () => {
  const clientDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-client-"));
  const emptyModels = await mkdtemp(path.join(os.tmpdir(), "maskflow-no-model-"));
  temporary.push(clientDir, emptyModels);
  await build({ root: "client", logLevel: "silent", build: { outDir: clientDir, emptyOutDir: true, sourcemap: false } });
  // As `maskflow serve` does on a machine without weights: the engines say so in GET /api/system.
  engines = await createEngines({ modelDir: path.join(emptyModels, "sd15-inpainting"), segmind: { apiKey: "", baseUrl: "http://127.0.0.1:9" } });
  // No shippedWorkflowsDir: the real workflows/ folder, so the default graph is the shipped "inpaint".
  server = await startTestServer({ clientDir, engines: engines.nodeEngines, engineStatus: () => engines.status() });
  browser = await launchBrowser();
  await mkdir(SCREENSHOTS, { recursive: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await engines?.dispose();
  await Promise.all(temporary.map((dir) => rm(dir, { recursive: true, force: true })));
});

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SCREENSHOTS, `feedback-${name}.png`) });

/** Page coordinates of a point given in a node's own coordinates. */
function nodePointToPage(page: Page, id: string, x: number, y: number): Promise<[number, number]> {
  return page.evaluate(
    ([nodeId, dx, dy]) => {
      const app = (window as any).maskflow;
      const node = app.nodeByDocumentId(nodeId);
      return app.toClient([node.pos[0] + dx, node.pos[1] + dy]);
    },
    [id, x, y] as const,
  );
}

interface PixelStats {
  /** Share of pixels brighter than 200 on every channel. */
  bright: number;
  /** Share of pixels darker than 40 on every channel. */
  dark: number;
  /** The largest difference between a pixel's channels: 0 for grey. */
  maxChroma: number;
  /** The brightest channel value seen. */
  maxValue: number;
}

/** What the user sees in a rectangle of the page (page pixels). */
async function pixelsIn(page: Page, box: { x: number; y: number; width: number; height: number }): Promise<PixelStats> {
  const png = await page.screenshot({ clip: box });
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let bright = 0;
  let dark = 0;
  let maxChroma = 0;
  let maxValue = 0;
  for (let i = 0; i < data.length; i += info.channels) {
    const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
    if (r > 200 && g > 200 && b > 200) bright++;
    if (r < 40 && g < 40 && b < 40) dark++;
    maxChroma = Math.max(maxChroma, Math.max(r, g, b) - Math.min(r, g, b));
    maxValue = Math.max(maxValue, r, g, b);
  }
  const count = info.width * info.height;
  return { bright: bright / count, dark: dark / count, maxChroma, maxValue };
}

type Extent = { x0: number; y0: number; x1: number; y1: number };

/** In a rectangle of the page: the extent of an error label's red and of the white text (glyph cores) in it. */
async function labelExtent(page: Page, box: { x: number; y: number; width: number; height: number }): Promise<{ red?: Extent; text?: Extent }> {
  const png = await page.screenshot({ clip: box });
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const grow = (extent: Extent | undefined, x: number, y: number): Extent =>
    extent ? { x0: Math.min(extent.x0, x), y0: Math.min(extent.y0, y), x1: Math.max(extent.x1, x), y1: Math.max(extent.y1, y) } : { x0: x, y0: y, x1: x, y1: y };
  let red: Extent | undefined;
  let text: Extent | undefined;
  for (let y = 0; y < info.height; y++) {
    for (let x = 0; x < info.width; x++) {
      const i = (y * info.width + x) * info.channels;
      const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
      if (r > 80 && g < 40 && b < 40) red = grow(red, x, y);
      if (r > 200 && g > 200 && b > 200) text = grow(text, x, y);
    }
  }
  return { red, text };
}

/** The page rectangle of the picture a node drew, shrunk by a few pixels to leave its outline out. */
async function pictureBox(page: Page, id: string): Promise<{ x: number; y: number; width: number; height: number }> {
  await redrawCanvas(page);
  const [rect] = (await page.evaluate((nodeId) => (window as any).maskflow.nodeView(nodeId).pictureRects, id)) as Array<[number, number, number, number]>;
  expect(rect, `node ${id} drew no picture`).toBeDefined();
  const [x0, y0] = await nodePointToPage(page, id, rect[0], rect[1]);
  const [x1, y1] = await nodePointToPage(page, id, rect[0] + rect[2], rect[1] + rect[3]);
  return { x: x0 + 3, y: y0 + 3, width: x1 - x0 - 6, height: y1 - y0 - 6 };
}

/** Picks a value of a combo widget the way a user does: click its middle, then the entry in the menu. */
async function chooseInCombo(page: Page, nodeId: string, widget: string, value: string): Promise<void> {
  await redrawCanvas(page);
  const [x, y] = await pointInWidget(page, nodeId, widget);
  await page.mouse.click(x, y);
  const entry = page.locator(".litecontextmenu .litemenu-entry", { hasText: new RegExp(`^${value}$`) });
  await entry.waitFor({ timeout: 5_000 });
  await entry.click();
  await expect.poll(() => page.evaluate(([id, name]) => (window as any).maskflow.nodeByDocumentId(id).widgets.find((w: { name: string }) => w.name === name).value, [nodeId, widget] as const)).toBe(value);
}

function widgetValueOf(page: Page, nodeId: string, widget: string): Promise<unknown> {
  return page.evaluate(([id, name]) => (window as any).maskflow.nodeByDocumentId(id).widgets.find((w: { name: string }) => w.name === name).value, [nodeId, widget] as const);
}

/** Waits until a node's picture is drawable and drawn once. */
async function waitForPicture(page: Page, id: string): Promise<void> {
  await page.waitForFunction((nodeId) => (window as any).maskflow.nodeView(nodeId)?.loaded === 1, id, { timeout: 10_000 });
  await redrawCanvas(page);
}

describe("what the editor tells the user", () => {
  it("shows the mask a Load Mask gives, following its channel and a newly painted mask", async () => {
    const editor = await openEditor(browser, server.url);
    const { page, errors } = editor;
    await waitForPicture(page, LOAD_MASK);
    // workflows/examples/room-mask.png: a white blob (about 2 % of the picture) on black, read by luminance.
    const shipped = await pixelsIn(page, await pictureBox(page, LOAD_MASK));
    expect(shipped.maxChroma).toBeLessThan(12); // grey, not the room picture
    expect(shipped.bright).toBeGreaterThan(0.01);
    expect(shipped.bright).toBeLessThan(0.05);
    expect(shipped.dark).toBeGreaterThan(0.9);
    await installPaintProbe(page);
    await redrawCanvas(page);
    expect(await paintedTexts(page)).toContain("512 × 512 · 2.1% masked");
    await shot(page, "01-load-mask-thumbnail");

    // An opaque picture has no alpha: read as alpha it is an empty mask, and the thumbnail says so.
    await chooseInCombo(page, LOAD_MASK, "channel", "alpha");
    await expect.poll(async () => (await pixelsIn(page, await pictureBox(page, LOAD_MASK))).bright, { timeout: 5_000 }).toBe(0);
    expect((await pixelsIn(page, await pictureBox(page, LOAD_MASK))).dark).toBeGreaterThan(0.95);
    expect(await paintedTexts(page)).toContain("512 × 512 · 0.0% masked");

    // Painting from the Load Mask: the saved mask (channel luminance again) replaces the thumbnail.
    const [bx, by] = await pointInWidget(page, LOAD_MASK, "paint mask");
    await page.mouse.click(bx, by);
    const painter = page.locator('[data-testid="mask-editor"]');
    await painter.waitFor({ timeout: 10_000 });
    // Select-all is swallowed by the painter: it used to select the page, and the drag below then moved that selection.
    await page.keyboard.press("Control+a");
    const view = (await page.locator(".mf-mask-view").boundingBox())!;
    const [cx, cy] = [view.x + view.width / 2, view.y + view.height / 2];
    for (let i = 0; i < 4; i++) await page.keyboard.press("]");
    await page.mouse.move(cx - view.height * 0.35, cy - view.height * 0.2);
    await page.mouse.down();
    await page.mouse.move(cx + view.height * 0.35, cy - view.height * 0.2, { steps: 20 });
    await page.mouse.move(cx + view.height * 0.35, cy + view.height * 0.2, { steps: 10 });
    await page.mouse.move(cx - view.height * 0.35, cy + view.height * 0.2, { steps: 20 });
    await page.mouse.up();
    await shot(page, "01b-painting-from-load-mask");
    await page.keyboard.press("Enter");
    await painter.waitFor({ state: "detached", timeout: 10_000 });
    await expect.poll(() => widgetValueOf(page, LOAD_MASK, "image"), { timeout: 10_000 }).not.toBe("examples/room-mask.png");
    expect(await widgetValueOf(page, LOAD_MASK, "channel")).toBe("luminance");
    await waitForPicture(page, LOAD_MASK);
    const painted = await pixelsIn(page, await pictureBox(page, LOAD_MASK));
    await shot(page, "01c-load-mask-after-painting");
    expect(painted.bright).toBeGreaterThan(shipped.bright + 0.05);
    expect(painted.maxChroma).toBeLessThan(12);
    expect(errors).toEqual([]);
    await editor.context.close();
  });

  it("warns before Queue that Inpaint (local) will fail without a local model, and refuses to queue it", async () => {
    const system = await api(server, "GET", "/api/system");
    expect(system.body.engines.local).toMatchObject({ installed: false });

    const editor = await openEditor(browser, server.url);
    const { page } = editor;
    const toolbar = page.locator("#engine-warning");
    await toolbar.waitFor({ state: "visible", timeout: 10_000 });
    expect(await toolbar.textContent()).toBe("No local model: Inpaint (local) will fail — `maskflow models pull`");
    // The whole line fits in the toolbar at 1400 px.
    expect(await toolbar.evaluate((element) => element.scrollWidth <= element.clientWidth)).toBe(true);
    const warnings = await page.evaluate((id) => (window as any).maskflow.nodeView(id).warnings, INPAINT);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^No local model on the server at .*sd15-inpainting: this node will fail\. Run `maskflow models pull`/);
    await installPaintProbe(page);
    await redrawCanvas(page);
    const texts = await paintedTexts(page);
    expect(texts.some((text) => text.startsWith("No local model on the server"))).toBe(true);
    // Wrapped at spaces: the lines joined again hold the command to run.
    expect(texts.join(" ")).toContain("`maskflow models pull`");
    await shot(page, "02-no-local-model-warning");

    await page.click("#queue-button");
    const notice = page.locator(".mf-notice-error", { hasText: "Not queued" });
    await notice.waitFor({ timeout: 10_000 });
    expect(await notice.textContent()).toBe(
      "Not queued: the server has no local model, so Inpaint (node 5) would fail. Run `maskflow models pull` on the server, or switch backend to segmind.",
    );
    await shot(page, "02b-queue-refused");
    const queue = await api(server, "GET", "/api/queue");
    expect([queue.body.running.length, queue.body.pending.length]).toEqual([0, 0]);
    expect((await api(server, "GET", "/api/history")).body).toEqual([]);

    // Backend segmind needs no local model: the warnings go as soon as the choice is made.
    await chooseInCombo(page, INPAINT, "backend", "segmind");
    await toolbar.waitFor({ state: "hidden", timeout: 5_000 });
    expect(await page.evaluate((id) => (window as any).maskflow.nodeView(id).warnings, INPAINT)).toEqual([]);
    await editor.context.close();
  });

  it("wraps a long error inside the node's width, with the red box behind every line", async () => {
    const missing = "holiday-2026-the-long-way-round-through-the-mountains-and-back-again-final-edit.png";
    const editor = await openEditor(browser, server.url);
    const { page } = editor;
    await page.evaluate(
      (file) =>
        (window as any).maskflow.loadDocument(
          {
            format: "maskflow-workflow",
            version: 1,
            nodes: [
              { id: "1", type: "LoadImage", inputs: { image: file }, ui: { pos: [40, 60], size: [260, 130] } },
              // Far to the right, so nothing but the label could be drawn right of Load Image.
              { id: "2", type: "SaveImage", inputs: { images: ["1", "image"], filename_prefix: "never" }, ui: { pos: [900, 60] } },
            ],
            ui: { ds: { scale: 1, offset: [20, 20] } },
          },
          "long-error",
        ),
      missing,
    );
    await page.click("#queue-button");
    await page.waitForFunction(() => (window as any).maskflow.nodeView("1").errors.length > 0, null, { timeout: 20_000 });
    const message = (await page.evaluate(() => (window as any).maskflow.nodeView("1").errors[0])) as string;
    expect(message).toContain(missing);
    await redrawCanvas(page);
    await shot(page, "03-error-label-wrapped");

    const size = (await page.evaluate(() => [...(window as any).maskflow.nodeByDocumentId("1").size])) as [number, number];
    // From the label's top (below LiteGraph's red frame round the node) and well beyond the node's right edge.
    const [left, bottom] = await nodePointToPage(page, "1", 0, size[1] + 17);
    const [right] = await nodePointToPage(page, "1", size[0], size[1]);
    const area = { x: Math.round(left) - 10, y: Math.round(bottom), width: Math.round(right - left) + 260, height: 240 };
    const { red, text } = await labelExtent(page, area);
    expect(red, "no red label under the node").toBeDefined();
    expect(text, "no text in the label").toBeDefined();
    // The box stays within the node's width…
    expect(area.x + red!.x0).toBeGreaterThanOrEqual(left - 1);
    expect(area.x + red!.x1).toBeLessThanOrEqual(right + 1);
    // …and every line of the message is on it (before the fix the first line ran on past its right edge).
    expect(text!.x0).toBeGreaterThanOrEqual(red!.x0);
    expect(text!.x1).toBeLessThanOrEqual(red!.x1);
    expect(text!.y0).toBeGreaterThanOrEqual(red!.y0);
    expect(text!.y1).toBeLessThanOrEqual(red!.y1);
    // The whole name is shown, over more than one line.
    expect(text!.y1 - text!.y0).toBeGreaterThan(20);
    await editor.context.close();
  });

  it("says when a run is done, how long it took and what it saved", async () => {
    const editor = await openEditor(browser, server.url);
    const { page, errors } = editor;
    await page.evaluate(() =>
      (window as any).maskflow.loadDocument(
        {
          format: "maskflow-workflow",
          version: 1,
          nodes: [
            { id: "1", type: "LoadImage", inputs: { image: "examples/room.png" }, ui: { pos: [40, 60] } },
            { id: "2", type: "ResizeImage", inputs: { image: ["1", "image"], width: 64, height: 64, mode: "stretch", kernel: "lanczos3" }, ui: { pos: [380, 60] } },
            { id: "3", type: "SaveImage", inputs: { images: ["2", "image"], filename_prefix: "done" }, ui: { pos: [720, 60] } },
          ],
        },
        "resize",
      ),
    );
    await page.click("#queue-button");
    const notice = page.locator(".mf-notice-success", { hasText: "Done" });
    await notice.waitFor({ timeout: 20_000 });
    expect(await notice.textContent()).toMatch(/^Done in \d+\.\d s — 1 image saved$/);
    await shot(page, "04-done-notice");
    expect(errors).toEqual([]);
    await editor.context.close();
  });

  for (const viewport of [
    { width: 1400, height: 900 },
    { width: 1280, height: 800 },
  ]) {
    it(`keeps every node of the default graph clear of the queue panel at ${viewport.width}×${viewport.height}`, async () => {
      const context = await browser.newContext({ viewport });
      await context.route(/^(?!https?:\/\/127\.0\.0\.1|ws:\/\/127\.0\.0\.1|blob:|data:)/, (route) => route.abort());
      const page = await context.newPage();
      await page.goto(server.url);
      await page.waitForFunction(() => (window as any).maskflow?.nodes().length === 6, null, { timeout: 15_000 });
      await page.evaluate(() => (window as any).maskflow.ready);

      const nodeBoxes = () =>
        page.evaluate(() => {
          const app = (window as any).maskflow;
          return app.nodes().map((node: { title: string; pos: [number, number]; size: [number, number] }) => {
            const [x0, y0] = app.toClient([node.pos[0], node.pos[1] - 30]);
            const [x1, y1] = app.toClient([node.pos[0] + node.size[0], node.pos[1] + node.size[1]]);
            return { title: node.title, x0, y0, x1, y1 };
          });
        }) as Promise<Array<{ title: string; x0: number; y0: number; x1: number; y1: number }>>;
      const canvasBox = async () => (await page.locator("#graph-canvas").boundingBox())!;
      const within = (outer: { x: number; y: number; width: number; height: number }) => (box: { x0: number; y0: number; x1: number; y1: number }) =>
        box.x0 >= outer.x && box.y0 >= outer.y && box.x1 <= outer.x + outer.width && box.y1 <= outer.y + outer.height;

      await redrawCanvas(page);
      const closed = await canvasBox();
      expect((await nodeBoxes()).filter((box) => !within(closed)(box)).map((box) => box.title)).toEqual([]);

      await page.click("#toggle-queue");
      const panel = page.locator("#queue-panel");
      await panel.waitFor({ state: "visible" });
      const panelBox = (await panel.boundingBox())!;
      // The canvas gave the panel its room and the graph was fitted again into what is left.
      await expect.poll(async () => (await canvasBox()).width).toBeLessThanOrEqual(panelBox.x + 1);
      await expect
        .poll(async () => {
          const visible = within(await canvasBox());
          return (await nodeBoxes()).filter((box) => box.x1 > panelBox.x || !visible(box)).map((box) => box.title);
        })
        .toEqual([]);
      await redrawCanvas(page);
      const scale = (await page.evaluate(() => (window as any).maskflow.canvas.ds.scale)) as number;
      expect(scale).toBeGreaterThan(0.55); // still readable
      await page.screenshot({ path: path.join(SCREENSHOTS, `feedback-05-queue-panel-${viewport.width}.png`) });

      // Closed again: the graph takes the whole width back.
      await page.click("#queue-panel [data-close]");
      await expect.poll(async () => (await page.evaluate(() => (window as any).maskflow.canvas.ds.scale)) as number).toBeGreaterThan(scale);
      await context.close();
    });
  }

  // Painting tools and sliders on the first row, selection (click-to-select) and Cancel/Save on the second.
  it("keeps the mask painter's toolbar on two rows at 1400 px with every slider's value shown", async () => {
    const editor = await openEditor(browser, server.url);
    const { page } = editor;
    await page.setViewportSize({ width: 1400, height: 900 });
    await waitForPicture(page, LOAD_IMAGE);
    const [bx, by] = await pointInWidget(page, LOAD_IMAGE, "paint mask");
    await page.mouse.click(bx, by);
    await page.locator('[data-testid="mask-editor"]').waitFor({ timeout: 10_000 });
    const toolbar = page.locator(".mf-mask-toolbar");

    /** The distinct rows the toolbar's buttons, sliders and title sit on (rounded tops). */
    const rows = () =>
      toolbar.evaluate((bar) => {
        const tops = [...bar.querySelectorAll("button, label, .mf-mask-title")].map((element) => {
          const box = element.getBoundingClientRect();
          return Math.round((box.top + box.bottom) / 2 / 8);
        });
        return [...new Set(tops)].length;
      });
    await shot(page, "06-mask-toolbar-1400");
    expect(await rows()).toBe(2);
    expect(await page.locator('[data-show="size"]').textContent()).toMatch(/^\d+ px$/);
    expect(await page.locator('[data-show="hardness"]').textContent()).toBe("80%");
    expect(await page.locator('[data-show="opacity"]').textContent()).toBe("60%");
    for (const name of ["size", "hardness", "opacity"]) {
      const value = (await page.locator(`[data-show="${name}"]`).boundingBox())!;
      expect(value.width, `${name} value`).toBeGreaterThan(10);
      expect(value.x + value.width).toBeLessThanOrEqual(1400);
    }
    // Moving the opacity slider updates its value.
    await page.locator('[data-control="opacity"]').focus();
    await page.keyboard.press("ArrowRight");
    expect(await page.locator('[data-show="opacity"]').textContent()).toBe("65%");

    const zoom = async () => Number(/ · (\d+)% · /.exec((await page.locator('[data-show="info"]').textContent()) ?? "")?.[1]);
    const wideZoom = await zoom();

    // Narrower: whole groups wrap onto a third row, nothing is cut off, and the picture is fitted again.
    await page.setViewportSize({ width: 1000, height: 760 });
    await expect.poll(rows).toBe(3);
    const overflow = await toolbar.evaluate((bar) => {
      const right = Math.max(...[...bar.querySelectorAll("button, label")].map((element) => element.getBoundingClientRect().right));
      return { scroll: bar.scrollWidth, client: bar.clientWidth, right };
    });
    expect(overflow.scroll).toBeLessThanOrEqual(overflow.client);
    expect(overflow.right).toBeLessThanOrEqual(1000);
    await expect.poll(zoom).toBeLessThan(wideZoom);
    await shot(page, "06b-mask-toolbar-1000");
    await page.keyboard.press("Escape");
    await editor.context.close();
  });

  it("loads the page with a favicon, no failed request and no console error", async () => {
    const context = await browser.newContext({ viewport: { width: 1400, height: 860 } });
    await context.route(/^(?!https?:\/\/127\.0\.0\.1|ws:\/\/127\.0\.0\.1|blob:|data:)/, (route) => route.abort());
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("console", (message) => {
      if (message.type() === "error" || message.type() === "warning") problems.push(`console ${message.type()}: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("requestfailed", (request) => problems.push(`failed: ${request.url()}`));
    page.on("response", (response) => {
      if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
    });
    await page.goto(server.url, { waitUntil: "networkidle" });
    await page.waitForFunction(() => (window as any).maskflow?.nodes().length > 0, null, { timeout: 15_000 });
    await page.evaluate(() => (window as any).maskflow.ready);
    const icon = await page.evaluate(async () => {
      const link = document.querySelector<HTMLLinkElement>('link[rel="icon"]');
      if (!link) return undefined;
      const response = await fetch(link.href);
      return { href: link.href, status: response.status, type: response.headers.get("content-type"), body: await response.text() };
    });
    expect(icon).toBeDefined();
    expect(icon!.status).toBe(200);
    expect(icon!.type).toMatch(/^image\/svg\+xml/);
    expect(icon!.body).toContain("<svg");
    // The browser asks for the icon on its own; a missing one shows as a console error here.
    await page.waitForLoadState("networkidle");
    await shot(page, "07-clean-load");
    expect(problems).toEqual([]);
    await context.close();
  });
});
