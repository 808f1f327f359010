/**
 * Click-to-select in the mask painter, in a real Chromium against a real server running the Segment Anything
 * miniature: a click on the object shows the proposed mask, Accept adds it, Save uploads it and wires it into the
 * graph. The client is built fresh with vite into a temp folder.
 */
import { cp, mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { build } from "vite";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SegmentEngine } from "../../server/engines/segment/segment-engine.ts";
import type { RunningServer } from "../../server/maskflow-server.ts";
import { ensureTinyHelperModels } from "../fixtures/make-tiny-helper-models.ts";
import { api, startTestServer } from "../helpers/test-server.ts";
import { launchBrowser, openEditor, pointInWidget } from "./editor-page.ts";

const SCREENSHOTS = path.resolve("test-results/screenshots");
const WIDTH = 240;
const HEIGHT = 160;
const OBJECT = { left: 60, top: 40, right: 150, bottom: 120 };

let server: RunningServer;
let browser: Browser;
let segment: SegmentEngine;
const temporary: string[] = [];

async function scenePng(): Promise<Buffer> {
  const data = Buffer.alloc(WIDTH * HEIGHT * 3);
  for (let y = 0; y < HEIGHT; y++) {
    for (let x = 0; x < WIDTH; x++) {
      const inside = x >= OBJECT.left && x < OBJECT.right && y >= OBJECT.top && y < OBJECT.bottom;
      data.set(inside ? [220, 40, 30] : [30, 60, 210], (y * WIDTH + x) * 3);
    }
  }
  return sharp(data, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } }).png().toBuffer();
}

beforeAll(async () => {
  const outDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-client-"));
  const shipped = await mkdtemp(path.join(os.tmpdir(), "maskflow-shipped-"));
  const modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-models-"));
  temporary.push(outDir, shipped, modelsDir);
  await cp((await ensureTinyHelperModels()).samAcly, path.join(modelsDir, "mobile-sam"), { recursive: true });
  await build({ root: "client", logLevel: "silent", build: { outDir, emptyOutDir: true, sourcemap: false } });
  segment = new SegmentEngine({ modelsDir, threads: 1 });
  server = await startTestServer({ clientDir: outDir, shippedWorkflowsDir: shipped, engines: { segment } });
  const form = new FormData();
  form.append("image", new Blob([new Uint8Array(await scenePng())], { type: "image/png" }), "scene.png");
  const uploaded = (await (await fetch(`${server.url}/api/upload`, { method: "POST", body: form })).json()) as { name: string };
  // LoadImage → ClassicalFill (its mask input empty, for the painted mask to fill) → SaveImage.
  const saved = await api(server, "PUT", "/api/workflows/inpaint", {
    format: "maskflow-workflow",
    version: 1,
    nodes: [
      { id: "1", type: "LoadImage", inputs: { image: uploaded.name }, ui: { pos: [40, 60] } },
      { id: "2", type: "ClassicalFill", inputs: { image: ["1", "image"], method: "telea", radius: 3 }, ui: { pos: [380, 60] } },
      { id: "3", type: "SaveImage", inputs: { images: ["2", "image"], filename_prefix: "selected" }, ui: { pos: [720, 60] } },
    ],
  });
  expect(saved.status).toBe(200);
  browser = await launchBrowser();
  await mkdir(SCREENSHOTS, { recursive: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await segment?.release();
  await Promise.all(temporary.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Where a picture pixel is on the screen: the painter fits the picture centred with 20 px around it, at most 4×. */
async function screenPoint(page: Page, x: number, y: number): Promise<[number, number]> {
  const box = (await page.locator(".mf-mask-view").boundingBox())!;
  const scale = Math.min((box.width - 40) / WIDTH, (box.height - 40) / HEIGHT, 4);
  return [box.x + (box.width - WIDTH * scale) / 2 + (x + 0.5) * scale, box.y + (box.height - HEIGHT * scale) / 2 + (y + 0.5) * scale];
}

/** The painter's canvas pixel under a picture pixel, as drawn. */
async function viewPixel(page: Page, x: number, y: number): Promise<number[]> {
  const [sx, sy] = await screenPoint(page, x, y);
  return page.evaluate(
    ([px, py]) => {
      const view = document.querySelector<HTMLCanvasElement>(".mf-mask-view")!;
      const box = view.getBoundingClientRect();
      return [...view.getContext("2d")!.getImageData(Math.floor(px - box.left), Math.floor(py - box.top), 1, 1).data];
    },
    [sx, sy] as const,
  );
}

describe("click-to-select in the mask painter", () => {
  it("a click on the object shows the proposed mask; Accept adds it, and the saved mask reaches the graph", async () => {
    const { context, page, errors } = await openEditor(browser, server.url);
    const [bx, by] = await pointInWidget(page, "1", "paint mask");
    await page.mouse.click(bx, by);
    const editor = page.locator('[data-testid="mask-editor"]');
    await editor.waitFor({ timeout: 15_000 });
    const status = page.locator(".mf-select-status");
    await page.locator('[data-select="toggle"]').click();
    await expect.poll(() => status.textContent(), { timeout: 10_000 }).toContain("click the object");
    expect(await page.locator('[data-select="accept"]').isDisabled()).toBe(true);

    // Sampled away from the click, where the point's marker is drawn.
    const before = await viewPixel(page, 80, 60);
    const [cx, cy] = await screenPoint(page, 105, 80);
    await page.mouse.click(cx, cy);
    await expect.poll(() => status.textContent(), { timeout: 15_000 }).toContain("Proposed selection");
    expect(await page.locator('[data-select="accept"]').isDisabled()).toBe(false);
    // The proposal shows in cyan over the red object; the blue background around it stays as it was.
    await expect.poll(async () => (await viewPixel(page, 80, 60))[2], { timeout: 5_000 }).toBeGreaterThan(before[2] + 60);
    const background = await viewPixel(page, 20, 20);
    expect(background[0]).toBeLessThan(60);
    expect(background[2]).toBeGreaterThan(180);
    // Nothing was painted yet: the click selected, it did not brush.
    expect(await page.locator('[data-show="info"]').textContent()).toContain("0.0% masked");
    await page.screenshot({ path: path.join(SCREENSHOTS, "05-click-select.png") });

    await page.locator('[data-select="accept"]').click();
    await expect.poll(() => status.textContent()).toContain("Added to the mask");
    const info = (await page.locator('[data-show="info"]').textContent()) ?? "";
    const covered = Number(/([\d.]+)% masked/.exec(info)?.[1]);
    // The object is 90×80 of 240×160 = 18.75 % of the picture.
    expect(covered).toBeGreaterThan(16);
    expect(covered).toBeLessThan(21);
    await page.keyboard.press("Enter");
    await editor.waitFor({ state: "detached" });

    const maskFile = await page.waitForFunction(() => {
      const app = (window as any).maskflow;
      const node = app.nodes().find((n: { type: string }) => n.type === "LoadMask");
      return node?.widgets.find((w: { name: string }) => w.name === "image")?.value || undefined;
    });
    const name = (await maskFile.jsonValue()) as string;
    const doc = await page.evaluate(() => (window as any).maskflow.toDocument());
    const loadMask = doc.nodes.find((n: { type: string }) => n.type === "LoadMask");
    const fill = doc.nodes.find((n: { type: string }) => n.type === "ClassicalFill");
    expect(fill.inputs.mask).toEqual([loadMask.id, "mask"]);

    const response = await fetch(`${server.url}/api/view?filename=${encodeURIComponent(name)}&type=input`);
    const { data, info: size } = await sharp(Buffer.from(await response.arrayBuffer())).greyscale().raw().toBuffer({ resolveWithObject: true });
    expect([size.width, size.height]).toEqual([WIDTH, HEIGHT]);
    expect(data[80 * WIDTH + 105]).toBeGreaterThan(200);
    expect(data[45 * WIDTH + 65]).toBeGreaterThan(200);
    expect(data[10 * WIDTH + 10]).toBeLessThan(20);
    expect(data[150 * WIDTH + 230]).toBeLessThan(20);
    expect(errors).toEqual([]);
    await context.close();
  });
});
