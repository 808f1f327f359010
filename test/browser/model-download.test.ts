/**
 * The first thing a user does on a fresh install, in a real Chromium against a real server on 127.0.0.1 with no
 * model and the fake hub (posing as the default repository at its pinned commit, serving the tiny checkpoint's
 * diffusers folder over a slow link): the toolbar offers Download model with what it fetches, its size and folder
 * and that the model is built from it, the panel shows the download's progress, survives a reload, then the build's,
 * the warnings go when the pull ends, and Queue then runs the default graph on the model it built.
 * Screenshots go to test-results/screenshots/download-*.png.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { build } from "vite";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngines, type Engines } from "../../server/engines/create-engines.ts";
import { DEFAULT_MODEL_REPO, DEFAULT_MODEL_REVISION } from "../../server/models/default-model.ts";
import { formatBytes } from "../../server/models/format-bytes.ts";
import { ModelPullService } from "../../server/models/model-pull-service.ts";
import { makeFakeCheckpointRepo } from "../helpers/fake-checkpoint-repo.ts";
import { type FakeHub, startFakeHub } from "../helpers/fake-hub.ts";
import { api, startTestServer, type TestServer } from "../helpers/test-server.ts";
import { launchBrowser, openEditor } from "./editor-page.ts";

const SCREENSHOTS = path.resolve("test-results/screenshots");
/** Node ids of workflows/inpaint.json. */
const INPAINT = "5";
const SAVE_IMAGE = "6";

let hub: FakeHub;
let server: TestServer;
let engines: Engines;
let pulls: ModelPullService;
let browser: Browser;
let modelDir = "";
let downloadDir = "";
const temporary: string[] = [];

beforeAll(async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), "maskflow-download-"));
  temporary.push(root);
  const clientDir = path.join(root, "client");
  const modelsDir = path.join(root, "models");
  modelDir = path.join(modelsDir, "sd15-inpainting");
  downloadDir = path.join(modelsDir, ".downloads", "sd15-inpainting");
  const { files } = await makeFakeCheckpointRepo();
  // About 11 MB at 2 MB/s: a few seconds of progress to watch.
  [hub] = await Promise.all([
    startFakeHub({ files, repo: DEFAULT_MODEL_REPO, commit: DEFAULT_MODEL_REVISION, behaviour: { bytesPerSecond: 2 * 1024 * 1024 } }),
    build({ root: "client", logLevel: "silent", build: { outDir: clientDir, emptyOutDir: true, sourcemap: false } }),
  ]);
  // As `maskflow serve` on a fresh install: the engine looks in models/sd15-inpainting, which is not there.
  engines = await createEngines({ modelDir, segmind: { apiKey: "", baseUrl: "http://127.0.0.1:9" } });
  pulls = new ModelPullService({ env: { HF_ENDPOINT: hub.url }, modelsDir, engine: engines.local, retryDelayMs: 1 });
  server = await startTestServer({ clientDir, dataDir: path.join(root, "data"), engines: engines.nodeEngines, engineStatus: () => engines.status(), modelPulls: pulls });
  browser = await launchBrowser();
  await mkdir(SCREENSHOTS, { recursive: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await pulls?.close();
  await server?.close();
  await engines?.dispose();
  await hub?.close();
  await Promise.all(temporary.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Records every text the pull's status line shows, from now on, for as long as the page lives. */
async function recordPullStatus(page: Page): Promise<void> {
  await page.evaluate(() => {
    const seen: string[] = [];
    (window as unknown as { __pullTexts: string[] }).__pullTexts = seen;
    const panel = document.querySelector("#model-panel")!;
    const record = () => {
      const text = panel.querySelector(".mf-pull-status")?.textContent;
      if (text && seen.at(-1) !== text) seen.push(text);
    };
    new MutationObserver(record).observe(panel, { subtree: true, childList: true, characterData: true });
  });
}

const pullTexts = (page: Page): Promise<string[]> => page.evaluate(() => (window as unknown as { __pullTexts: string[] }).__pullTexts);

describe("getting the model from the editor on a fresh install", () => {
  it("Download model: size and folder first, progress the whole way (through a reload), then Queue runs on the pulled model", async () => {
    const editor = await openEditor(browser, server.url);
    let { page } = editor;
    const errors = editor.errors;

    // Before anything is queued: the toolbar says it and offers the download; so does the Inpaint node.
    const toolbar = page.locator("#engine-warning");
    await toolbar.waitFor({ state: "visible", timeout: 10_000 });
    const download = page.locator("#download-model");
    await download.waitFor({ state: "visible", timeout: 10_000 });
    expect(await toolbar.textContent()).toBe("No local model: Inpaint (local) will fail");
    // The warning and the button beside it fit the toolbar at 1400 px, nothing cut.
    expect(await toolbar.evaluate((element) => element.scrollWidth <= element.clientWidth)).toBe(true);
    const warnings = await page.evaluate((id) => (window as any).maskflow.nodeView(id).warnings, INPAINT);
    expect(warnings[0]).toContain("click Download model in the toolbar");

    // Name, pinned commit, size, what the files are, that they are built, and the folders, before anything is fetched.
    await download.click();
    const size = page.locator("#model-panel .mf-model-size");
    await size.waitFor({ timeout: 10_000 });
    const preview = (await api(server, "GET", "/api/models/pull/preview")).body;
    expect(preview.fileCount).toBe(12);
    expect(await size.textContent()).toBe(`${DEFAULT_MODEL_REPO} (commit ${DEFAULT_MODEL_REVISION.slice(0, 12)}): ${formatBytes(preview.totalBytes)} in ${preview.fileCount} files`);
    expect(await page.locator("#model-panel .mf-model-build").textContent()).toBe(
      "The text_encoder, unet and vae weights (fp16 safetensors), with their configs, the tokenizer and the scheduler's config. " +
        "Maskflow then builds its ONNX graphs from them, on this server.",
    );
    expect(await page.locator("#model-panel .mf-model-where").textContent()).toBe(`Into ${modelDir} (the downloaded files are kept in ${downloadDir})`);
    expect(await page.locator("#model-panel .mf-model-body").textContent()).toContain(`${formatBytes(preview.totalBytes)} to fetch and about ${formatBytes(preview.buildBytes)} to build`);
    expect(hub.requests.every((r) => r.path.startsWith("/api/"))).toBe(true);
    await page.screenshot({ path: path.join(SCREENSHOTS, "download-01-offer.png") });

    await recordPullStatus(page);
    await page.click('#model-panel [data-do="start"]');
    // Progress with speed and time left, as the server reports it.
    await page.waitForFunction(
      () => ((window as any).__pullTexts as string[]).some((text) => /^[\d.]+ [KM]?B of [\d.]+ MB \(\d+%\) · [\d.]+ [KM]?B\/s · \d+ s left$/.test(text)),
      null,
      { timeout: 20_000 },
    );
    await page.screenshot({ path: path.join(SCREENSHOTS, "download-02-progress.png") });

    // A reload mid-way finds the pull where it is: slow the link right down so it is still under way.
    hub.behaviour.bytesPerSecond = 64 * 1024;
    await editor.context.close();
    ({ page } = await openEditor(browser, server.url));
    page.on("pageerror", (error) => errors.push(error.message));
    const status = page.locator("#model-panel .mf-pull-status");
    await status.waitFor({ state: "visible", timeout: 10_000 });
    expect(await page.locator("#model-panel").isVisible()).toBe(true);
    expect(await status.textContent()).toMatch(/^[\d.]+ [KM]?B of [\d.]+ MB \(\d+%\)/);
    expect(await page.locator('#model-panel [data-do="cancel"]').isVisible()).toBe(true);
    await page.screenshot({ path: path.join(SCREENSHOTS, "download-03-after-reload.png") });
    await recordPullStatus(page);
    hub.behaviour.bytesPerSecond = undefined;

    // The end: the panel said it was building, and says the model is ready; the warnings go, the model is listed and the engine has it.
    await page.locator("#model-panel .mf-model-ok").waitFor({ timeout: 30_000 });
    expect(await page.locator("#model-panel .mf-model-ok").textContent()).toBe(
      `Model ready: sd15-inpainting (${formatBytes(preview.totalBytes)} downloaded, built here) in ${modelDir}. Queue runs on it now.`,
    );
    expect((await pullTexts(page)).some((text) => /^Building the model: (reading checkpoint|building (text_encoder|unet|vae_encoder|vae_decoder)) \d+ %$/.test(text))).toBe(true);
    await page.locator("#engine-warning").waitFor({ state: "hidden", timeout: 10_000 });
    await page.locator("#download-model").waitFor({ state: "hidden", timeout: 10_000 });
    expect(await page.evaluate((id) => (window as any).maskflow.nodeView(id).warnings, INPAINT)).toEqual([]);
    const percents = (await pullTexts(page)).map((text) => Number(/\((\d+)%\)/.exec(text)?.[1])).filter((n) => !Number.isNaN(n));
    expect(percents.length).toBeGreaterThan(0);
    expect(percents).toEqual([...percents].sort((a, b) => a - b));
    const listed = (await api(server, "GET", "/api/models")).body;
    expect(listed.models).toEqual([expect.objectContaining({ name: "sd15-inpainting", kind: "built", status: "complete", repo: DEFAULT_MODEL_REPO, commit: DEFAULT_MODEL_REVISION })]);
    await page.screenshot({ path: path.join(SCREENSHOTS, "download-04-done.png") });

    // Queue now runs the default graph on the miniature it built: a picture on Save Image. At the miniature's own
    // size: its VAE downsamples by 4 and its UNet attends at full latent resolution, so 512² would take minutes on CPU.
    await page.evaluate((id) => {
      const node = (window as any).maskflow.nodeByDocumentId(id);
      for (const name of ["width", "height"]) node.widgets.find((w: { name: string }) => w.name === name).value = 64;
    }, INPAINT);
    await page.click('#model-panel [data-do="close"]');
    await page.click("#queue-button");
    const handle = await page.waitForFunction(
      (id) => {
        const view = (window as any).maskflow.nodeView(id);
        return view?.loaded === 1 ? view.images[0] : undefined;
      },
      SAVE_IMAGE,
      { timeout: 60_000 },
    );
    const url = (await handle.jsonValue()) as string;
    expect(url).toMatch(/^\/api\/view\?filename=inpaint_[^&]*\.png&type=output/);
    const response = await fetch(server.url + url);
    const meta = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", 512, 512]);
    await page.screenshot({ path: path.join(SCREENSHOTS, "download-05-queued.png") });
    expect(errors).toEqual([]);
    await page.context().close();
  }, 120_000);
});
