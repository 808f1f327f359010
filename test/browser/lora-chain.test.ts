/**
 * Load LoRA in the editor, as a user meets it, in a real Chromium against a real server on 127.0.0.1 whose local
 * engine reads a models folder made here (the tiny SD 1.5 inpainting checkpoint in checkpoints/, two tiny LoRAs in
 * loras/): the combo lists the LoRAs and asks again when opened; Load Checkpoint → Load LoRA → Inpaint, added from the
 * search box and linked by dragging, runs, and its picture is not the one with the LoRA's strengths at 0; changing
 * only strength_model rebuilds the UNet (seen on the nodes) and neither the text encoder nor the checkpoint's hash.
 * Screenshot: /tmp/lora-chain.png (the wired graph after its first run).
 */
import { copyFile, mkdir, rm } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../server/maskflow-server.ts";
import { ensureTinyLoras, type TinyLoraPaths } from "../fixtures/make-tiny-lora.ts";
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
  type ServerEvent,
} from "./editor-page.ts";

const WIRING_SHOT = "/tmp/lora-chain.png";
/** Node ids of workflows/inpaint.json. */
const SCHEDULER = "4";
const INPAINT = "5";
const SAVE_IMAGE = "6";
/** What the loras/ folder below holds when the editor opens, as GET /api/models/loras lists it. */
const LORAS = ["kohya-ldm.safetensors", "peft.safetensors"];
const ADDED_LATER = "kohya-diffusers-locon.safetensors";
const BUILD_LABEL = /^(reading checkpoint|building )/;

let setup: CheckpointEditor | undefined;
let server: RunningServer;
let browser: Browser;
let modelsDir = "";
let loras: TinyLoraPaths;
let shippedInpaint: ShippedWorkflow;

beforeAll(async () => {
  // Two of the tiny LoRAs in loras/; no default model: every run here goes through Load Checkpoint.
  setup = await startCheckpointEditor({
    fill: async (dir) => {
      loras = await ensureTinyLoras();
      await mkdir(path.join(dir, "loras"));
      await copyFile(loras["kohya-ldm"], path.join(dir, "loras", "kohya-ldm.safetensors"));
      await copyFile(loras.peft, path.join(dir, "loras", "peft.safetensors"));
    },
  });
  ({ server, browser, modelsDir, shippedInpaint } = setup);
}, 180_000);

afterAll(async () => {
  await setup?.close();
});

/** workflows/inpaint.json at a size and step count the tiny checkpoint runs in seconds on a CPU. */
function smallInpaint(): unknown {
  const copy = structuredClone(shippedInpaint);
  Object.assign(copy.nodes.find((node) => node.id === INPAINT)!.inputs, { width: 64, height: 64 });
  Object.assign(copy.nodes.find((node) => node.id === SCHEDULER)!.inputs, { steps: 2 });
  return { ...copy, name: "lora-chain" };
}

/** Adds a node as a user does: a double-click on empty canvas at a graph point, the search box, Enter. Its document id. */
async function addFromSearch(page: Page, query: string, type: string, at: [number, number]): Promise<string> {
  const count = () => page.evaluate((t) => (window as any).maskflow.nodes().filter((n: { type: string }) => n.type === t).length, type);
  const before = await count();
  const [x, y] = await page.evaluate((point) => (window as any).maskflow.toClient(point), at);
  const search = page.locator(".litesearchbox input");
  // A slow frame can split a double-click: try again.
  for (let attempt = 0; attempt < 5 && !(await search.isVisible()); attempt++) {
    await page.mouse.dblclick(x, y);
    await search.waitFor({ timeout: 2_000 }).catch(() => {});
  }
  await search.pressSequentially(query);
  // The list follows the typing after a moment: Enter once the node asked for is first.
  const first = page.locator(".litesearchbox .lite-search-item").first();
  await expect.poll(() => first.textContent({ timeout: 1_000 }).catch(() => ""), { timeout: 5_000 }).toContain(query);
  await search.press("Enter");
  await expect.poll(count, { timeout: 5_000 }).toBe(before + 1);
  return page.evaluate((t) => String((window as any).maskflow.nodes().filter((n: { type: string }) => n.type === t).at(-1).id), type);
}

/** Drags a MODEL output onto a MODEL input until the document carries the link (a slow frame can swallow a drag's start). */
async function link(page: Page, from: string, to: string): Promise<void> {
  const linked = async () => nodeOf(await documentOf(page), to).inputs.model;
  const start = await pointOnSocket(page, from, "output", "model");
  const end = await pointOnSocket(page, to, "input", "model");
  for (let attempt = 0; attempt < 3 && (await linked()) === undefined; attempt++) {
    await drag(page, start, end);
    await redrawCanvas(page);
  }
  expect(await linked()).toEqual([from, "model"]);
}

function setWidget(page: Page, id: string, name: string, value: unknown): Promise<void> {
  return page.evaluate(
    ([nodeId, widgetName, widgetValue]) => {
      const node = (window as any).maskflow.nodeByDocumentId(nodeId);
      const widget = node.widgets.find((w: { name: string }) => w.name === widgetName);
      widget.value = widgetValue;
      widget.callback?.(widgetValue);
      node.setDirtyCanvas(true, true);
    },
    [id, name, value] as const,
  );
}

interface Run {
  jobId: string;
  /** The server's events for this job. */
  events: ServerEvent[];
  /** The texts painted on the canvas while it ran. */
  painted: string[];
  /** The picture Save Image shows, as the page fetched it. */
  png: Buffer;
}

/** Presses Queue, waits for the job's end and for Save Image to show its new picture. */
async function queue(page: Page, events: ServerEvent[]): Promise<Run> {
  await page.evaluate(() => {
    (window as any).__paintLog.texts.length = 0;
  });
  const shownBefore = await page.evaluate((id) => (window as any).maskflow.nodeView(id).images[0] ?? "", SAVE_IMAGE);
  const answered = page.waitForResponse((response) => response.request().method() === "POST" && new URL(response.url()).pathname === "/api/prompt");
  await page.click("#queue-button");
  const response = await answered;
  expect(response.status()).toBe(200);
  const { id: jobId } = (await response.json()) as { id: string };
  const ended = () => events.find((event) => event.data.jobId === jobId && /^execution_(success|error|interrupted)$/.test(event.type));
  await expect.poll(() => ended()?.type, { timeout: 120_000, interval: 250 }).toBeDefined();
  expect(ended(), JSON.stringify(ended())).toMatchObject({ type: "execution_success" });
  await page.waitForFunction(
    ([id, before]) => {
      const view = (window as any).maskflow.nodeView(id);
      return view.images.length === 1 && view.images[0] !== before && view.loaded === 1;
    },
    [SAVE_IMAGE, shownBefore] as const,
    { timeout: 20_000 },
  );
  await redrawCanvas(page);
  const painted = await paintedTexts(page);
  const url = await page.evaluate((id) => (window as any).maskflow.nodeView(id).images[0] as string, SAVE_IMAGE);
  const png = Buffer.from(await (await fetch(new URL(url, server.url))).arrayBuffer());
  return { jobId, events: events.filter((event) => event.data.jobId === jobId), painted, png };
}

/**
 * How two pictures of the same size differ: the largest difference of a channel, in grey levels, and the share of
 * pixels with a channel more than 8 grey levels apart.
 */
async function pixelDifference(a: Buffer, b: Buffer): Promise<{ max: number; changed: number }> {
  const [first, second] = await Promise.all([a, b].map((png) => sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true })));
  expect([second.info.width, second.info.height]).toEqual([first.info.width, first.info.height]);
  const channels = first.info.channels;
  let max = 0;
  let changed = 0;
  for (let pixel = 0; pixel < first.data.length; pixel += channels) {
    let most = 0;
    for (let c = 0; c < channels; c++) most = Math.max(most, Math.abs(first.data[pixel + c] - second.data[pixel + c]));
    max = Math.max(max, most);
    if (most > 8) changed++;
  }
  return { max, changed: changed / (first.info.width * first.info.height) };
}

const buildProgress = (run: Run) => run.events.filter((event) => event.type === "progress" && BUILD_LABEL.test(event.data.label ?? ""));
/** The parts that build progress names ("building unet 12 %"). */
const builtParts = (progress: ServerEvent[]) => new Set(progress.map((event) => /^building (\w+)/.exec(event.data.label!)?.[1]).filter(Boolean));

describe("Load LoRA in the editor", () => {
  it("lists the models folder's LoRAs in its combo, and a LoRA added later once the combo is opened again", async () => {
    const { page, errors, context } = await openEditor(browser, server.url);
    expect(await page.evaluate(() => (window as any).maskflow.loras.list())).toEqual(LORAS);
    // Below Scheduler, where the shipped graph leaves the canvas empty.
    const lora = await addFromSearch(page, "Load LoRA", "LoraLoader", [400, 580]);
    await redrawCanvas(page);
    const fresh = nodeOf(await documentOf(page), lora);
    // A new Load LoRA starts on the first LoRA, at full strength, as ComfyUI's does.
    expect(fresh.inputs).toMatchObject({ lora: LORAS[0], strength_model: 1, strength_clip: 1, ignore_unmatched: false });
    expect(await comboEntries(page, lora, "lora")).toEqual(LORAS);
    await closeMenu(page);

    // A LoRA dropped into the folder while the editor is open: opening the combo offers it, and it can be chosen.
    await copyFile(loras["kohya-diffusers-locon"], path.join(modelsDir, "loras", ADDED_LATER));
    try {
      expect(await comboEntries(page, lora, "lora")).toEqual([ADDED_LATER, ...LORAS].sort());
      await page.locator(".litecontextmenu .litemenu-entry", { hasText: ADDED_LATER }).click();
      expect(nodeOf(await documentOf(page), lora).inputs.lora).toBe(ADDED_LATER);
    } finally {
      await rm(path.join(modelsDir, "loras", ADDED_LATER));
    }
    expect(errors).toEqual([]);
    await context.close();
  });

  describe("Load Checkpoint → Load LoRA → Inpaint", () => {
    let editor: EditorPage & { events: ServerEvent[] };
    let checkpoint = "";
    let lora = "";
    let withLora: Run;

    afterAll(async () => {
      await editor?.context.close();
    });

    it("is wired by dragging from nodes added with the search box, and its job succeeds", { timeout: 240_000 }, async () => {
      editor = await openEditorRecording(browser, server.url);
      const { page, errors, events } = editor;
      await page.evaluate((doc) => (window as any).maskflow.loadDocument(doc, "lora-chain"), smallInpaint());
      await redrawCanvas(page);
      await installPaintProbe(page);

      // Where the shipped graph leaves the canvas empty, one under the other: below Scheduler (Inpaint grows down
      // when it shows its picture, and Load Mask with its mask: not there).
      checkpoint = await addFromSearch(page, "Load Checkpoint", "CheckpointLoader", [390, 580]);
      lora = await addFromSearch(page, "Load LoRA", "LoraLoader", [390, 700]);
      // Tidied as a user would after dropping them: aligned with Scheduler, clear of each other.
      await page.evaluate(
        ([c, l]) => {
          const app = (window as any).maskflow;
          app.nodeByDocumentId(c).pos = [380, 570];
          app.nodeByDocumentId(l).pos = [380, 690];
        },
        [checkpoint, lora] as const,
      );
      await redrawCanvas(page);
      await link(page, checkpoint, lora);
      await link(page, lora, INPAINT);

      // The checkpoint and the LoRA chosen from their combos.
      await comboEntries(page, checkpoint, "checkpoint");
      await page.locator(".litecontextmenu .litemenu-entry", { hasText: "tiny.safetensors" }).click();
      expect(await comboEntries(page, lora, "lora")).toEqual(LORAS);
      await page.locator(".litecontextmenu .litemenu-entry", { hasText: "kohya-ldm.safetensors" }).click();
      const doc = await documentOf(page);
      expect(nodeOf(doc, checkpoint).inputs).toEqual({ checkpoint: "tiny.safetensors" });
      expect(nodeOf(doc, lora).inputs).toEqual({ model: [checkpoint, "model"], lora: "kohya-ldm.safetensors", strength_model: 1, strength_clip: 1, ignore_unmatched: false });
      expect(nodeOf(doc, INPAINT).inputs.model).toEqual([lora, "model"]);

      withLora = await queue(page, events);
      // Load Checkpoint builds the checkpoint; Inpaint then builds what the LoRA changes (its UNet and text encoder)
      // and takes the VAE as it was.
      const progress = buildProgress(withLora);
      expect(builtParts(progress.filter((event) => event.data.node === checkpoint))).toEqual(new Set(["text_encoder", "unet", "vae_encoder", "vae_decoder"]));
      expect(builtParts(progress.filter((event) => event.data.node === INPAINT))).toEqual(new Set(["text_encoder", "unet"]));
      expect(withLora.painted.some((text) => /^building unet \d+ %$/.test(text)), "no UNet build was painted").toBe(true);

      // The wired graph after its run: nothing over anything, all in view, the file names drawn whole.
      const { boxes, view } = await nodeLayout(page);
      const ids = Object.keys(boxes);
      for (const [i, a] of ids.entries()) for (const b of ids.slice(i + 1)) expect(boxesApart(boxes[a], boxes[b]), `node ${a} over node ${b}`).toBe(true);
      for (const [id, box] of Object.entries(boxes)) expect(boxInside(box, view), `node ${id} out of view`).toBe(true);
      await page.evaluate(() => {
        (window as any).__paintLog.texts.length = 0;
      });
      await redrawCanvas(page);
      const drawn = await paintedTexts(page);
      expect(drawn).toContain("kohya-ldm.safetensors");
      expect(drawn).toContain("tiny.safetensors");
      await page.screenshot({ path: WIRING_SHOT });
      await page.screenshot({ path: path.join(SCREENSHOTS, "lora-chain-wiring.png") });
      expect(errors).toEqual([]);
    });

    it("changing only strength_model rebuilds the UNet, seen on the nodes, and not the text encoder or the checkpoint's hash", { timeout: 180_000 }, async () => {
      expect(withLora, "the chain did not run").toBeDefined();
      const { page, errors, events } = editor;
      await setWidget(page, lora, "strength_model", 0.5);
      expect(nodeOf(await documentOf(page), lora).inputs).toMatchObject({ strength_model: 0.5, strength_clip: 1 });
      const run = await queue(page, events);

      // What the user saw on the nodes: the UNet built again, the text encoder not.
      const painted = run.painted.filter((text) => BUILD_LABEL.test(text));
      expect(painted.some((text) => /^building unet \d+ %$/.test(text)), `painted: ${painted.join(" | ")}`).toBe(true);
      expect(painted.filter((text) => text.startsWith("building text_encoder"))).toEqual([]);
      // Every build event of the job says the same (a label can be too short-lived to be painted).
      const progress = buildProgress(run);
      expect(builtParts(progress)).toEqual(new Set(["unet"]));
      // The checkpoint and the LoRA are not read again: their hashes are remembered, so "reading checkpoint" is at
      // most the memo's one step (0 or 1 of 1), never bytes hashed.
      for (const event of progress.filter((e) => e.data.label!.startsWith("reading checkpoint"))) {
        expect(event.data.label).toMatch(/^reading checkpoint (0|100) %$/);
        expect(event.data.max, JSON.stringify(event.data)).toBeLessThanOrEqual(1);
      }
      for (const text of painted.filter((t) => t.startsWith("reading checkpoint"))) expect(text).toMatch(/^reading checkpoint (0|100) %$/);
      // The picture changed with the UNet.
      expect((await pixelDifference(withLora.png, run.png)).changed).toBeGreaterThan(0);
      expect(errors).toEqual([]);
    });

    it("paints another picture than the same graph with the LoRA's strengths at 0", { timeout: 180_000 }, async () => {
      expect(withLora, "the chain did not run").toBeDefined();
      const { page, errors, events } = editor;
      await setWidget(page, lora, "strength_model", 0);
      await setWidget(page, lora, "strength_clip", 0);
      const withoutLora = await queue(page, events);
      // Strength 0 is the checkpoint as Load Checkpoint built it: nothing to build.
      expect(builtParts(buildProgress(withoutLora))).toEqual(new Set());
      const difference = await pixelDifference(withLora.png, withoutLora.png);
      // Pasted back into the 512 × 512 picture, only the masked spot (about 2 % of it) is painted.
      expect(difference.max, "the LoRA did not change the picture").toBeGreaterThan(40);
      expect(difference.changed, "the LoRA did not change the picture").toBeGreaterThan(0.005);
      expect(errors).toEqual([]);
    });
  });
});
