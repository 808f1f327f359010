// A mid-size generated model for benchmarks: the tiny fixture's layout and names, with a UNet
// wide and deep enough that one call (batch 2, 64×64 latents, i.e. one classifier-free-guided
// step at 512×512) costs about 100 ms on a 2-core CPU. Its weights are random; the point is a
// UNet cost that dominates a step the way a real one does, so the pipeline's own overhead
// (tokenizing, scheduler maths, tensor copies, preview encoding) shows up in proportion.
//
// Usage: node bin/run-ts.js bench/make-mid-model.ts [--out DIR] [--time]
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import * as ort from "onnxruntime-node";
import { writeTinyModel, type TinyModelOptions } from "../test/fixtures/make-tiny-models.ts";

/**
 * Measured on the 2-core AMD EPYC (AVX-512) dev machine with onnxruntime-node 1.30 CPU,
 * default session options: median 97–99 ms per UNet call at batch 2, 64×64. unet/ is ~11 MB,
 * generated in well under a second.
 */
export const MID_MODEL_OPTIONS: TinyModelOptions = { variant: "fp32", unetWidth: 160, unetDepth: 12, seed: 4321 };

export const DEFAULT_MID_MODEL_DIR = path.join(os.tmpdir(), "maskflow-mid-sd-inpaint");

export async function writeMidModel(dir: string = DEFAULT_MID_MODEL_DIR): Promise<string> {
  await writeTinyModel(dir, MID_MODEL_OPTIONS);
  return dir;
}

export interface UnetTiming {
  readonly medianMs: number;
  readonly minMs: number;
  readonly runs: number;
}

/** Times the folder's UNet at batch 2, 64×64 latents (after warm-up runs), as the benchmark sees it. */
export async function timeMidUnet(dir: string, runs = 10): Promise<UnetTiming> {
  const session = await ort.InferenceSession.create(path.join(dir, "unet", "model.onnx"));
  const hidden = session.inputMetadata.find((value) => value.name === "encoder_hidden_states");
  const hiddenSize = hidden?.isTensor === true && typeof hidden.shape[2] === "number" ? hidden.shape[2] : 32;
  const channels = MID_MODEL_OPTIONS.unetChannels ?? 9;
  const sample = new Float32Array(2 * channels * 64 * 64).map((_, i) => Math.sin(i));
  const feeds = {
    sample: new ort.Tensor("float32", sample, [2, channels, 64, 64]),
    timestep: new ort.Tensor("int64", BigInt64Array.from([500n]), [1]),
    encoder_hidden_states: new ort.Tensor("float32", new Float32Array(2 * 77 * hiddenSize).fill(0.1), [2, 77, hiddenSize]),
  };
  for (let i = 0; i < 3; i++) await session.run(feeds);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await session.run(feeds);
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  await session.release();
  return { medianMs: times[Math.floor(times.length / 2)], minMs: times[0], runs };
}

async function main(argv: readonly string[]): Promise<void> {
  const outIndex = argv.indexOf("--out");
  const dir = outIndex >= 0 && argv[outIndex + 1] !== undefined ? path.resolve(argv[outIndex + 1]) : DEFAULT_MID_MODEL_DIR;
  const started = performance.now();
  await writeMidModel(dir);
  console.log(`mid model: ${dir} (generated in ${(performance.now() - started).toFixed(0)} ms)`);
  if (argv.includes("--time")) {
    const timing = await timeMidUnet(dir);
    console.log(`unet, batch 2, 64×64: median ${timing.medianMs.toFixed(1)} ms, min ${timing.minMs.toFixed(1)} ms over ${timing.runs} runs`);
  }
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(path.resolve(entry)).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
