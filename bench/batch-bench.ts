/**
 * A folder batch against the same pictures run one `maskflow run` at a time, both as real processes on the
 * mid-size model: what the batch saves is the process start, the model load and warm-up, and (with the
 * prompt remembered) the text encoder, once per picture after the first. Reports the wall time of each way,
 * per picture, and the batch's first picture against its later ones.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import sharp from "sharp";
import { writeMidModel } from "./make-mid-model.ts";

const run = promisify(execFile);
const repo = path.resolve(import.meta.dirname, "..");
const PICTURES = 6;
const SIZE = 256;
const STEPS = 10;

async function maskflow(args: string[]): Promise<{ ms: number; stderr: string; stdout: string }> {
  const started = performance.now();
  const { stdout, stderr } = await run(process.execPath, [path.join(repo, "bin/maskflow.js"), ...args], { timeout: 600_000, maxBuffer: 16 * 1024 * 1024 });
  return { ms: performance.now() - started, stdout, stderr };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

export async function benchBatch(): Promise<Record<string, number | string>> {
  const model = await writeMidModel();
  const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-batch-bench-"));
  try {
    // In the data folder's input/, so the one-by-one runs can name them (a single run reads only from there).
    const input = path.join(dir, "data", "input");
    await mkdir(path.join(input, "photos"), { recursive: true });
    await mkdir(path.join(input, "masks"), { recursive: true });
    for (let i = 0; i < PICTURES; i++) {
      await sharp({ create: { width: SIZE, height: SIZE, channels: 3, background: { r: 30 * i, g: 120, b: 200 - 20 * i } } }).png().toFile(path.join(input, "photos", `p${i}.png`));
      await sharp({ create: { width: SIZE, height: SIZE, channels: 3, background: "#000" } })
        .composite([{ input: { create: { width: SIZE / 2, height: SIZE / 2, channels: 3, background: "#fff" } }, left: SIZE / 4, top: SIZE / 4 }])
        .png()
        .toFile(path.join(input, "masks", `p${i}.png`));
    }
    const common = ["--model", model, "--data", path.join(dir, "data"), "--set", `4.steps=${STEPS}`, "--set", `5.width=${SIZE}`, "--set", `5.height=${SIZE}`];
    const workflow = path.join(repo, "workflows/inpaint.json");

    const batch = await maskflow(["run", workflow, ...common, "--out", path.join(dir, "batch"), "--json", "--batch", `1.image=${path.join(input, "photos")}`, "--batch", `2.image=${path.join(input, "masks")}`]);
    const report = JSON.parse(batch.stdout) as { done: number; items: Array<{ seconds: number }> };
    if (report.done !== PICTURES) throw new Error(`the batch did ${report.done} of ${PICTURES}: ${batch.stderr}`);

    let separateMs = 0;
    for (let i = 0; i < PICTURES; i++) {
      const one = await maskflow(["run", workflow, ...common, "--out", path.join(dir, "one"), "--set", `1.image=photos/p${i}.png`, "--set", `2.image=masks/p${i}.png`]);
      separateMs += one.ms;
    }
    return {
      // Both ways share the machine with whatever else runs: the load average says how busy it was.
      "batch: load average before": os.loadavg().map((v) => v.toFixed(2)).join(" "),
      [`batch: ${PICTURES} pictures ${SIZE}², ${STEPS} DDIM steps, mid-size model, one process (s)`]: batch.ms / 1000,
      [`batch: the same, one \`maskflow run\` per picture (s)`]: separateMs / 1000,
      "batch: per picture in the batch (s)": batch.ms / 1000 / PICTURES,
      // The first picture loads and warms up the model and encodes the prompt; the others find them ready.
      "batch: the batch's first picture (s)": report.items[0].seconds,
      "batch: the batch's later pictures, median (s)": median(report.items.slice(1).map((item) => item.seconds)),
      "batch: per picture run one by one (s)": separateMs / 1000 / PICTURES,
      "batch: one by one ÷ batch": separateMs / batch.ms,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
