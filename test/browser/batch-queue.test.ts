/**
 * A batch from the editor: Batch… with a folder already on the server for the pictures and an upload for
 * the masks, then the queue panel's one group for it, which opens into a row per picture and stays open
 * across refreshes.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { build } from "vite";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../server/maskflow-server.ts";
import { startTestServer } from "../helpers/test-server.ts";
import { launchBrowser, openEditor } from "./editor-page.ts";

const SCREENSHOTS = path.resolve("test-results/screenshots");
let server: RunningServer;
let browser: Browser;
let masksDir: string;
const temporary: string[] = [];

const graph = {
  format: "maskflow-workflow",
  version: 1,
  nodes: [
    { id: "1", type: "LoadImage", inputs: { image: "" }, ui: { pos: [40, 60] } },
    { id: "2", type: "LoadMask", inputs: { image: "", channel: "luminance" }, ui: { pos: [40, 420] } },
    { id: "3", type: "Composite", inputs: { destination: ["1", "image"], source: ["1", "image"], mask: ["2", "mask"] }, ui: { pos: [400, 60] } },
    { id: "4", type: "SaveImage", inputs: { images: ["3", "image"], filename_prefix: "editor" }, ui: { pos: [740, 60] } },
  ],
};

async function uploadInto(subfolder: string, name: string, rgb: [number, number, number]) {
  const png = await sharp({ create: { width: 48, height: 32, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toBuffer();
  const form = new FormData();
  form.append("image", new Blob([new Uint8Array(png)], { type: "image/png" }), name);
  form.append("subfolder", subfolder);
  const response = await fetch(`${server.url}/api/upload`, { method: "POST", body: form });
  expect(response.status).toBe(200);
}

beforeAll(async () => {
  const outDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-client-"));
  masksDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-masks-"));
  temporary.push(outDir, masksDir);
  await build({ root: "client", logLevel: "silent", build: { outDir, emptyOutDir: true, sourcemap: false } });
  server = await startTestServer({ clientDir: outDir });
  for (const [name, rgb] of [["a", [200, 40, 40]], ["b", [40, 200, 40]], ["c", [40, 40, 200]]] as const) {
    await uploadInto("photos", `${name}.png`, [...rgb]);
    await sharp({ create: { width: 48, height: 32, channels: 3, background: "#fff" } }).png().toFile(path.join(masksDir, `${name}.png`));
  }
  browser = await launchBrowser();
  await mkdir(SCREENSHOTS, { recursive: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await Promise.all(temporary.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe("a batch from the editor", () => {
  it("queues the graph once per picture and shows the batch as one group with its progress, expandable", async () => {
    const { context, page, errors } = await openEditor(browser, server.url);
    await page.evaluate((doc) => (window as any).maskflow.loadDocument(doc, "batch"), graph);

    // Batch… sits in the queue panel's head, beside Clear pending.
    await page.click("#toggle-queue");
    await page.click("#queue-batch");
    const dialog = page.locator("#batch-dialog");
    await dialog.waitFor();
    await page.screenshot({ path: path.join(SCREENSHOTS, "batch-01-dialog.png") });
    // The pictures from the folder already on the server; the masks uploaded from this computer.
    await dialog.locator('[data-key="1.image"] select').selectOption("photos");
    await dialog.locator('[data-key="2.image"] select').selectOption({ label: "upload pictures…" });
    const picker = dialog.locator('[data-key="2.image"] input[type=file]');
    await picker.waitFor({ state: "visible" });
    const chooser = page.waitForEvent("filechooser");
    await picker.click();
    await (await chooser).setFiles(["a", "b", "c"].map((name) => path.join(masksDir, `${name}.png`)));
    await dialog.locator('[data-do="queue-batch"]').click();
    await dialog.waitFor({ state: "detached", timeout: 15_000 });

    // The panel opens on its own: one group, not three loose jobs.
    const group = page.locator("#queue-panel .mf-batch");
    await expect.poll(() => group.locator(".mf-batch-title").textContent(), { timeout: 15_000 }).toBe("Batch of 3 · 3/3 done");
    expect(await group.count()).toBe(1);
    expect(await page.locator("#queue-panel .mf-batch progress").evaluate((p: HTMLProgressElement) => [p.value, p.max])).toEqual([3, 3]);
    expect(await page.locator("#queue-panel .mf-queue-body > .mf-job").count()).toBe(0);
    // Closed at first; a click opens it into a row per picture, in the batch's order, each with its result.
    expect(await group.evaluate((d: HTMLDetailsElement) => d.open)).toBe(false);
    await group.locator("summary").click();
    const rows = group.locator(".mf-job");
    await expect.poll(() => rows.allTextContents()).toEqual([expect.stringMatching(/^✓ a · /), expect.stringMatching(/^✓ b · /), expect.stringMatching(/^✓ c · /)]);
    expect(await group.locator(".mf-thumbs img").count()).toBe(3);
    await page.screenshot({ path: path.join(SCREENSHOTS, "batch-02-queue-group.png") });

    // One notice for the batch, not one per picture (the first may end before the editor hears its batch's answer).
    await page.locator(".mf-notice", { hasText: "Batch finished: 3 of 3 done" }).waitFor({ timeout: 10_000 });
    expect(await page.locator(".mf-notice", { hasText: "Done in" }).count()).toBeLessThanOrEqual(1);

    // A redraw (another job ending) keeps the group open.
    await page.evaluate(() => (window as any).maskflow.queuePanel.refresh());
    await page.waitForTimeout(300);
    expect(await group.evaluate((d: HTMLDetailsElement) => d.open)).toBe(true);

    // Each job read its own pair: the saved pictures carry the three colours.
    const saved = await page.evaluate(() =>
      Array.from(document.querySelectorAll<HTMLImageElement>("#queue-panel .mf-batch .mf-thumbs img")).map((img) => img.getAttribute("src")),
    );
    const colours = [];
    for (const src of saved) {
      const bytes = Buffer.from(await (await fetch(server.url + src!)).arrayBuffer());
      const { data } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
      colours.push([...data.subarray(0, 3)]);
    }
    expect(colours).toEqual([[200, 40, 40], [40, 200, 40], [40, 40, 200]]);
    expect(errors).toEqual([]);
    await context.close();
  });

  it("says why a batch was not queued, in the dialog", async () => {
    const { context, page } = await openEditor(browser, server.url);
    await page.evaluate((doc) => (window as any).maskflow.loadDocument(doc, "batch"), graph);
    await uploadInto("lonely", "z.png", [1, 2, 3]);
    await page.click("#toggle-queue");
    await page.click("#queue-batch");
    const dialog = page.locator("#batch-dialog");
    await dialog.locator('[data-key="1.image"] select').selectOption("photos");
    await dialog.locator('[data-key="2.image"] select').selectOption("lonely");
    await dialog.locator('[data-do="queue-batch"]').click();
    await expect
      .poll(() => dialog.locator(".mf-batch-status").textContent(), { timeout: 10_000 })
      .toMatch(/^Not queued: 4 picture names have no partner in every folder, so nothing was queued: photos\/a\.png has no partner in lonely/);
    await context.close();
  });
});
