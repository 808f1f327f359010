import { spawn } from "node:child_process";
import { mkdtemp, readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { readWorkflowFromPng } from "../nodes/image/png-workflow-chunk.ts";
import { main } from "../server/cli/main.ts";
import { ensureTinyModels } from "./fixtures/make-tiny-models.ts";
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

describe("shipped workflows run through `maskflow run`", () => {
  it("inpaint.json: a 512×512 PNG carrying its workflow, the original outside the mask, the same pixels for the same seed", async () => {
    const original = await raw(path.join(repo, "workflows/examples/room.png"));
    const mask = await maskOf("room-mask.png");
    const first = await runShipped("inpaint", ["--set", "4.steps=4"]);
    expect([first.pixels.width, first.pixels.height]).toEqual([512, 512]);
    expect(readWorkflowFromPng(first.png)).toMatchObject({ format: "maskflow-workflow", name: "inpaint" });
    expect(first.report.values["4"].seed).toBe("42");
    // Paste-back: every pixel outside the mask is the original's, to the byte.
    expect(countChanged(first.pixels, original, (x, y) => mask.data[y * 512 + x] === 0)).toBe(0);
    expect(countChanged(first.pixels, original, (x, y) => mask.data[y * 512 + x] === 255)).toBeGreaterThan(1000);

    const again = await runShipped("inpaint", ["--set", "4.steps=4"]);
    expect(Buffer.compare(again.pixels.data, first.pixels.data)).toBe(0);
    const euler = await runShipped("inpaint", ["--set", "4.steps=4", "--set", "4.scheduler=Euler"]);
    expect(Buffer.compare(euler.pixels.data, first.pixels.data)).not.toBe(0);
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
