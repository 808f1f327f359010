import { spawn } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { readWorkflowFromPng } from "../nodes/image/png-workflow-chunk.ts";
import { main } from "../server/cli/main.ts";
import { ensureTinyHelperModels } from "./fixtures/make-tiny-helper-models.ts";
import { ensureTinyModels } from "./fixtures/make-tiny-models.ts";
import { ensureTinyCheckpoints } from "./fixtures/make-tiny-checkpoint.ts";
import { ensureTinyLoras } from "./fixtures/make-tiny-lora.ts";
import { startFakeSegmind } from "./helpers/fake-segmind.ts";

const repo = path.resolve(import.meta.dirname, "..");
let tinyModel: string;

beforeAll(async () => {
  tinyModel = (await ensureTinyModels()).fp32;
});

function sink() {
  let text = "";
  const stream = Object.assign(new Writable({ write(chunk, _encoding, done) { text += chunk; done(); } }), { isTTY: false });
  return { stream, text: () => text };
}

/** `maskflow run workflows/NAME.json` on the tiny model; returns the PNG it wrote and what it said. */
async function runShipped(name: string, extra: string[] = []) {
  const dir = await mkdtemp(path.join(os.tmpdir(), `maskflow-${name}-`));
  const stdout = sink();
  const stderr = sink();
  const code = await main(["run", path.join(repo, "workflows", `${name}.json`), "--model", tinyModel, "--out", path.join(dir, "out"), "--data", path.join(dir, "data"), "--json", ...extra], {
    stdout: stdout.stream,
    stderr: stderr.stream,
  });
  const report = JSON.parse(stdout.text()) as { status: string; files: Array<{ node: string; path: string }>; values: Record<string, Record<string, string>> };
  expect(code, stderr.text()).toBe(0);
  expect(report.files).toHaveLength(1);
  const png = await readFile(report.files[0].path);
  return { png, report, pixels: await raw(png) };
}

async function raw(file: string | Buffer) {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

async function maskOf(name: string) {
  const { data, info } = await sharp(path.join(repo, "workflows/examples", name)).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width };
}

/** Pixels farther than `margin` from every masked pixel (a square neighbourhood). */
function farFromMask(mask: { data: Buffer; width: number }, margin: number): (x: number, y: number) => boolean {
  const width = mask.width;
  const near = new Uint8Array(mask.data.length);
  for (let y = 0; y < width; y++) {
    for (let x = 0; x < width; x++) {
      if (mask.data[y * width + x] === 0) continue;
      for (let dy = -margin; dy <= margin; dy++) {
        const row = y + dy;
        if (row < 0 || row >= width) continue;
        near.fill(1, row * width + Math.max(0, x - margin), row * width + Math.min(width, x + margin + 1));
      }
    }
  }
  return (x, y) => near[y * width + x] === 0;
}

function countChanged(a: { data: Buffer; width: number }, b: { data: Buffer; width: number }, keep: (x: number, y: number) => boolean, width = a.width, height = a.data.length / 3 / a.width) {
  let changed = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!keep(x, y)) continue;
      const i = (y * a.width + x) * 3;
      const j = (y * b.width + x) * 3;
      if (a.data[i] !== b.data[j] || a.data[i + 1] !== b.data[j + 1] || a.data[i + 2] !== b.data[j + 2]) changed++;
    }
  }
  return changed;
}

/** examples/room.png: the table top spans rows 250–269 and columns 300–449 in one colour; the wall above it is a vertical ramp. */
const TABLE_TOP = { left: 300, right: 450, top: 250, bottom: 270 };

type Pixels = { data: Buffer; width: number };

/** Per channel, the mean |difference| from `reference`, and the mean gradient magnitude (central differences, RMS over channels). */
function pixelStats(image: Pixels, pixels: ReadonlyArray<readonly [number, number]>, reference: (x: number, y: number) => readonly number[]) {
  let error = 0;
  let gradient = 0;
  const at = (x: number, y: number, c: number) => image.data[(y * image.width + x) * 3 + c];
  for (const [x, y] of pixels) {
    const expected = reference(x, y);
    let squares = 0;
    for (let c = 0; c < 3; c++) {
      error += Math.abs(at(x, y, c) - expected[c]) / 3;
      squares += ((at(x + 1, y, c) - at(x - 1, y, c)) / 2) ** 2 + ((at(x, y + 1, c) - at(x, y - 1, c)) / 2) ** 2;
    }
    gradient += Math.sqrt(squares / 3);
  }
  return { error: pixels.length ? error / pixels.length : 0, gradient: pixels.length ? gradient / pixels.length : 0 };
}

/**
 * How well the fill in `result` continues the table top and the wall above it in room.png: the colour
 * error and gradient of the filled pixels inside the table top (its edge rows left out for the gradient) and
 * in the wall above, next to the same figures for the known pixels within 16 px of the hole. The hole is the
 * example mask grown by 4 px, as the workflow grows it.
 */
function measureTableFill(result: Pixels, original: Pixels, mask: Pixels) {
  const outsideHole = farFromMask(mask, 4);
  const filled = (x: number, y: number) => !outsideHole(x, y);
  const farFromHole = farFromMask(mask, 4 + 16);
  const tableColour = [...original.data.subarray((TABLE_TOP.top * original.width + TABLE_TOP.left) * 3, (TABLE_TOP.top * original.width + TABLE_TOP.left) * 3 + 3)];
  const table: Array<[number, number]> = [];
  const tableInside: Array<[number, number]> = [];
  const knownTable: Array<[number, number]> = [];
  for (let y = TABLE_TOP.top; y < TABLE_TOP.bottom; y++) {
    for (let x = TABLE_TOP.left + 1; x < TABLE_TOP.right - 1; x++) {
      const inside = y > TABLE_TOP.top && y < TABLE_TOP.bottom - 1;
      if (filled(x, y)) {
        table.push([x, y]);
        if (inside) tableInside.push([x, y]);
      } else if (inside) knownTable.push([x, y]);
    }
  }
  const wall: Array<[number, number]> = [];
  const knownWall: Array<[number, number]> = [];
  for (let y = 100; y < TABLE_TOP.top - 1; y++) {
    for (let x = TABLE_TOP.left; x < TABLE_TOP.right; x++) {
      if (filled(x, y)) wall.push([x, y]);
      else if (!farFromHole(x, y)) knownWall.push([x, y]);
    }
  }
  // The known pixels are what they claim to be, so the figures below measure the fill and not a changed example.
  expect(table.length).toBeGreaterThan(1000);
  expect(pixelStats(original, knownTable, () => tableColour).error).toBe(0);
  // The wall's colour on a row is the known wall's on that row, just left of the hole.
  const wallColour = (x: number, y: number) => {
    let left = x;
    while (filled(left, y)) left--;
    return [...original.data.subarray((y * original.width + left) * 3, (y * original.width + left) * 3 + 3)];
  };
  return {
    tableColourError: pixelStats(result, table, () => tableColour).error,
    tableGradient: pixelStats(result, tableInside, () => tableColour).gradient,
    knownTableGradient: pixelStats(original, knownTable, () => tableColour).gradient,
    wallColourError: pixelStats(result, wall, wallColour).error,
    wallGradient: pixelStats(result, wall, wallColour).gradient,
    knownWallGradient: pixelStats(original, knownWall, wallColour).gradient,
  };
}

describe("shipped workflows run through `maskflow run`", () => {
  it("inpaint.json: a 512×512 PNG carrying its workflow, the original outside the mask, the same pixels for the same seed", async () => {
    const original = await raw(path.join(repo, "workflows/examples/room.png"));
    const mask = await maskOf("room-mask.png");
    const first = await runShipped("inpaint", ["--set", "4.steps=4"]);
    expect([first.pixels.width, first.pixels.height]).toEqual([512, 512]);
    expect(readWorkflowFromPng(first.png)).toMatchObject({ format: "maskflow-workflow", name: "inpaint" });
    expect(first.report.values["4"].seed).toBe(42);
    // Paste-back: every pixel outside the mask is the original's, to the byte.
    expect(countChanged(first.pixels, original, (x, y) => mask.data[y * 512 + x] === 0)).toBe(0);
    expect(countChanged(first.pixels, original, (x, y) => mask.data[y * 512 + x] === 255)).toBeGreaterThan(1000);

    const again = await runShipped("inpaint", ["--set", "4.steps=4"]);
    expect(Buffer.compare(again.pixels.data, first.pixels.data)).toBe(0);
    const euler = await runShipped("inpaint", ["--set", "4.steps=4", "--set", "4.scheduler=Euler"]);
    expect(Buffer.compare(euler.pixels.data, first.pixels.data)).not.toBe(0);
  });

  it("lcm-inpaint.json: a checkpoint with LCM-LoRA merged, LCM in 4 steps without guidance; the original outside the mask, the same pixels for the same seed", async () => {
    // The workflow names models/sd15-inpainting (here the miniature checkpoint as a diffusers folder) and
    // models/loras/lcm-lora-sdv1-5.safetensors (here a miniature LoRA of the same layout).
    const modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-lcm-models-"));
    await symlink((await ensureTinyCheckpoints()).diffusers, path.join(modelsDir, "sd15-inpainting"));
    await mkdir(path.join(modelsDir, "loras"));
    await copyFile((await ensureTinyLoras())["kohya-ldm"], path.join(modelsDir, "loras", "lcm-lora-sdv1-5.safetensors"));
    // The miniature's VAE makes a latent of 4×4 pixels: the model runs at 128² (the picture stays 512²).
    const small = ["--set", "5.width=128", "--set", "5.height=128"];
    const previous = process.env.MASKFLOW_MODELS_DIR;
    process.env.MASKFLOW_MODELS_DIR = modelsDir;
    try {
    const original = await raw(path.join(repo, "workflows/examples/room.png"));
    const mask = await maskOf("room-mask.png");
    const first = await runShipped("lcm-inpaint", small);
    expect(readWorkflowFromPng(first.png)).toMatchObject({ nodes: expect.arrayContaining([expect.objectContaining({ type: "LoraLoader" }), expect.objectContaining({ type: "CheckpointLoader" })]) });
    expect([first.pixels.width, first.pixels.height]).toEqual([512, 512]);
    expect(readWorkflowFromPng(first.png)).toMatchObject({ name: "lcm-inpaint", nodes: expect.arrayContaining([expect.objectContaining({ id: "4", inputs: expect.objectContaining({ scheduler: "LCM", steps: 4, guidance: 1 }) })]) });
    expect(countChanged(first.pixels, original, (x, y) => mask.data[y * 512 + x] === 0)).toBe(0);
    expect(countChanged(first.pixels, original, (x, y) => mask.data[y * 512 + x] === 255)).toBeGreaterThan(1000);
    const again = await runShipped("lcm-inpaint", small);
    expect(Buffer.compare(again.pixels.data, first.pixels.data)).toBe(0);
    // Another step count, and DDIM on the same settings, each fill differently.
    const eight = await runShipped("lcm-inpaint", [...small, "--set", "4.steps=8"]);
    expect(Buffer.compare(eight.pixels.data, first.pixels.data)).not.toBe(0);
    const ddim = await runShipped("lcm-inpaint", [...small, "--set", "4.scheduler=DDIM"]);
    expect(Buffer.compare(ddim.pixels.data, first.pixels.data)).not.toBe(0);
    // The LoRA is in the picture: at strength 0 the fill differs.
    const withoutLora = await runShipped("lcm-inpaint", [...small, "--set", "8.strength_model=0", "--set", "8.strength_clip=0"]);
    expect(Buffer.compare(withoutLora.pixels.data, first.pixels.data)).not.toBe(0);
    } finally {
      if (previous === undefined) delete process.env.MASKFLOW_MODELS_DIR;
      else process.env.MASKFLOW_MODELS_DIR = previous;
      await rm(modelsDir, { recursive: true, force: true });
    }
  });

  it("remove-object.json: needs no model; the object is gone and nothing else changed", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-remove-"));
    const stdout = sink();
    const code = await main(["run", path.join(repo, "workflows/remove-object.json"), "--model", path.join(dir, "no-model"), "--out", dir, "--data", dir], { stdout: stdout.stream, stderr: sink().stream });
    expect(code).toBe(0);
    const result = await raw(stdout.text().trim());
    const original = await raw(path.join(repo, "workflows/examples/room.png"));
    const mask = await maskOf("room-mask.png");
    // GrowMask widened the hole by 4 px: beyond that, every byte is the original's.
    expect(countChanged(result, original, farFromMask(mask, 4))).toBe(0);
    // The red object (≈ 192, 57, 43) no longer shows: no strongly red pixel is left inside the mask.
    let red = 0;
    for (let p = 0; p < mask.data.length; p++) {
      if (mask.data[p] === 255 && result.data[p * 3] > 150 && result.data[p * 3 + 1] < 90) red++;
    }
    expect(red).toBe(0);

    // The fill continues the table top and the wall: measured on the filled pixels against the known ones around them.
    const fill = measureTableFill(result, original, mask);
    // Telea's diffusion (method telea) scored: table top 54 levels off its colour with gradient 4.8 (known
    // top: 0), wall 17 levels off with gradient 3.3 (known wall: 0.16): two brown streaks rising into the wall
    // and wall colour across the table. The patch fill scores 0, 0, 0 and 0.17 (the wall's own ramp).
    expect(fill.tableColourError).toBeLessThan(4);
    expect(fill.tableGradient).toBeLessThan(fill.knownTableGradient + 0.5);
    expect(fill.wallColourError).toBeLessThan(1);
    expect(fill.wallGradient).toBeLessThan(fill.knownWallGradient + 0.3);
  });

  it("remove-object-learned.json: LearnedFill on the LaMa miniature; the object is gone and nothing else changed", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-remove-learned-"));
    const lama = (await ensureTinyHelperModels()).lama;
    const stdout = sink();
    const stderr = sink();
    const code = await main(["run", path.join(repo, "workflows/remove-object-learned.json"), "--set", `4.model=${lama}`, "--out", dir, "--data", dir], { stdout: stdout.stream, stderr: stderr.stream });
    expect(code, stderr.text()).toBe(0);
    const result = await raw(stdout.text().trim());
    const original = await raw(path.join(repo, "workflows/examples/room.png"));
    const mask = await maskOf("room-mask.png");
    // Only the (grown) mask's pixels are pasted back: beyond it every byte is the original's.
    expect(countChanged(result, original, farFromMask(mask, 4))).toBe(0);
    let red = 0;
    for (let p = 0; p < mask.data.length; p++) {
      if (mask.data[p] === 255 && result.data[p * 3] > 150 && result.data[p * 3 + 1] < 90) red++;
    }
    expect(red).toBe(0);
  });

  it("soft-inpaint.json: a feathered mask with soft_mask; far from the mask the original, the change fading from the mask's core outwards", async () => {
    const original = await raw(path.join(repo, "workflows/examples/room.png"));
    const mask = await maskOf("room-mask.png");
    const soft = await runShipped("soft-inpaint", ["--set", "4.steps=6"]);
    expect([soft.pixels.width, soft.pixels.height]).toEqual([512, 512]);
    expect(readWorkflowFromPng(soft.png)).toMatchObject({ format: "maskflow-workflow", name: "soft-inpaint" });
    // FeatherMask radius 24 is a Gaussian of sigma 12: past 48 px its grey has rounded to 0, where paste-back keeps the original.
    expect(countChanged(soft.pixels, original, farFromMask(mask, 48))).toBe(0);
    // Mean change per channel: deep in the mask (wholly free) more than in the outer half of the feathered ring (held most steps).
    const meanChange = (keep: (x: number, y: number) => boolean) => {
      let sum = 0;
      let count = 0;
      for (let y = 0; y < 512; y++) {
        for (let x = 0; x < 512; x++) {
          if (!keep(x, y)) continue;
          for (let c = 0; c < 3; c++) sum += Math.abs(soft.pixels.data[(y * 512 + x) * 3 + c] - original.data[(y * 512 + x) * 3 + c]);
          count++;
        }
      }
      return sum / (3 * count);
    };
    // This random-weight model's change saturates after a step or two free, so the bands are far apart in grey.
    const core = farFromMask({ ...mask, data: mask.data.map((v) => 255 - v) as Buffer }, 24);
    const [beyond4, beyond12, beyond24] = [farFromMask(mask, 4), farFromMask(mask, 12), farFromMask(mask, 24)];
    const justOutside = (x: number, y: number) => mask.data[y * 512 + x] === 0 && !beyond4(x, y);
    const fartherOut = (x: number, y: number) => beyond12(x, y) && !beyond24(x, y);
    const [coreChange, nearChange, farChange] = [meanChange(core), meanChange(justOutside), meanChange(fartherOut)];
    expect(coreChange, `${coreChange} > ${nearChange} > ${farChange}`).toBeGreaterThan(nearChange);
    expect(nearChange, `${coreChange} > ${nearChange} > ${farChange}`).toBeGreaterThan(farChange);
    expect(farChange).toBeGreaterThan(0);
    const hard = await runShipped("soft-inpaint", ["--set", "4.steps=6", "--set", "5.soft_mask=false"]);
    expect(Buffer.compare(hard.pixels.data, soft.pixels.data)).not.toBe(0);
  });

  it("outpaint.json: 128 px added on the right, the original kept left of the seam", async () => {
    const { pixels } = await runShipped("outpaint", ["--set", "4.steps=3"]);
    expect([pixels.width, pixels.height]).toEqual([640, 512]);
    const original = await raw(path.join(repo, "workflows/examples/room.png"));
    // The feather (16 px) repaints a seam inside the original; left of it nothing changed.
    expect(countChanged(pixels, original, (x) => x < 512 - 16, 512, 512)).toBe(0);
  });

  it("detail-pass.json: two crop → inpaint → stitch passes; far from both masks the picture is untouched", async () => {
    const { pixels } = await runShipped("detail-pass", ["--set", "6.steps=2"]);
    expect([pixels.width, pixels.height]).toEqual([512, 512]);
    const original = await raw(path.join(repo, "workflows/examples/room.png"));
    const first = farFromMask(await maskOf("room-mask.png"), 16);
    const second = farFromMask(await maskOf("room-window-mask.png"), 16);
    expect(countChanged(pixels, original, (x, y) => first(x, y) && second(x, y))).toBe(0);
    expect(countChanged(pixels, original, (x, y) => !second(x, y))).toBeGreaterThan(1000);
  });

  it("segmind-inpaint.json: runs against a Segmind server given by SEGMIND_BASE_URL and SEGMIND_API_KEY", async () => {
    const fake = await startFakeSegmind();
    try {
      const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-segmind-"));
      const output = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, [path.join(repo, "bin/maskflow.js"), "run", path.join(repo, "workflows/segmind-inpaint.json"), "--out", dir, "--data", dir], {
          env: { ...process.env, SEGMIND_BASE_URL: fake.url, SEGMIND_API_KEY: fake.apiKey },
        });
        let stdout = "";
        let stderr = "";
        const timer = setTimeout(() => child.kill(), 60_000);
        child.stdout.on("data", (c) => (stdout += c));
        child.stderr.on("data", (c) => (stderr += c));
        child.on("error", reject);
        child.on("close", (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
      });
      expect(output.code, output.stderr).toBe(0);
      const result = await raw(output.stdout.trim());
      expect([result.width, result.height]).toEqual([512, 512]);
      expect(fake.requests.at(-1)!.body).toMatchObject({ scheduler: "DDIM", num_inference_steps: 20, img_width: 512 });
    } finally {
      await fake.close();
    }
  });
});
