/**
 * One measurement of the checkpoint-build bench (bench/checkpoint-build.ts), in a process of its own so that
 * its peak RSS (the kernel's high-water mark for the process, worker threads included) is the measurement's
 * alone. Its last stdout line is `CHECKPOINT_BUILD_RESULT {json}`; progress goes to stderr.
 *
 *   import SOURCE NAME MODELS_DIR           `maskflow models import SOURCE --name NAME --models MODELS_DIR`, run
 *                                           through the CLI's own main(), timed per phase from its progress lines
 *   steps DIR [--calls N] [--batch2 N]      the model loaded as the engine loads it (warm-up included), then N
 *                                           batch-1 and N batch-2 UNet calls at 64×64 latents (512²)
 *   inpaint DIR [--steps N] [--size PX]     one inpaint through OnnxEngine (DDIM, guidance 7.5, 1 sample)
 *   unet DIR [--side L] [--batch B] [--calls N]   the sessions loaded as the engine loads them, no warm-up, then
 *                                           N UNet calls at L×L latents and batch B
 *   workflow FILE MODELS_DIR OUT DATA [--model DIR]   `maskflow run FILE [--model DIR] --out OUT --data DATA` with
 *                                           MASKFLOW_MODELS_DIR=MODELS_DIR, through the CLI's own main(), timed by
 *                                           hooks on the engine (model asked for, first session opened, model ready)
 *                                           and on every onnxruntime run (which session, when, output finite)
 */
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { main as maskflowMain } from "../server/cli/main.ts";
import { OnnxEngine } from "../server/engines/onnx/onnx-engine.ts";
import { isConversionPhase } from "../server/engines/onnx/fp32-cache.ts";
import { OnnxSession } from "../server/engines/onnx/onnx-session.ts";
import { loadSdModel, type SdModel } from "../server/engines/onnx/sd-model.ts";
import { WARM_UP_PHASE } from "../server/engines/onnx/unet-warm-up.ts";
import { RssSampler } from "./rss-sampler.ts";

/** The line the parent (checkpoint-build.ts) looks for. */
const RESULT_PREFIX = "CHECKPOINT_BUILD_RESULT ";

type Result = Record<string, number | string | boolean | number[] | Record<string, number>>;

const peakRss = () => process.resourceUsage().maxRSS * 1024;
const rss = () => process.memoryUsage.rss();
const seconds = (ms: number) => ms / 1000;
const say = (line: string) => process.stderr.write(`checkpoint-build child: ${line}\n`);

function option(args: readonly string[], flag: string, fallback: number): number {
  const at = args.indexOf(flag);
  if (at < 0) return fallback;
  const value = Number(args[at + 1]);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${flag} needs a whole number`);
  return value;
}

/** A stderr for the CLI's main(): passes everything through and hands each whole line to `onLine`. */
function passLines(onLine: (line: string) => void): Writable {
  let pending = "";
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      process.stderr.write(chunk);
      pending += chunk.toString("utf8");
      let newline: number;
      while ((newline = pending.indexOf("\n")) >= 0) {
        onLine(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
      }
      done();
    },
  });
}

/** `maskflow models import`, through the CLI's main() with a stderr that also notes when each phase starts. */
async function importCheckpoint(source: string, name: string, modelsDir: string): Promise<Result> {
  const sampler = new RssSampler(["reading", "text_encoder", "unet", "vae_encoder", "vae_decoder"] as const);
  const started = performance.now();
  const phaseStarts: Record<string, number> = {};
  const stderr = passLines((line) => {
    const phase = /^reading checkpoint/.test(line) ? "reading" : /^building (\w+)/.exec(line)?.[1];
    if (phase && !(phase in phaseStarts)) {
      phaseStarts[phase] = performance.now();
      if (phase === "reading" || phase === "text_encoder" || phase === "unet" || phase === "vae_encoder" || phase === "vae_decoder") sampler.enter(phase);
    }
  });
  sampler.enter("reading");
  let stdoutText = "";
  const stdout = new Writable({
    write(chunk: Buffer, _encoding, done) {
      stdoutText += chunk.toString("utf8");
      process.stderr.write(chunk);
      done();
    },
  });
  const code = await maskflowMain(["models", "import", source, "--name", name, "--models", modelsDir], { stdout, stderr });
  const ended = performance.now();
  await sampler.stop();
  const order = Object.entries(phaseStarts).sort((a, b) => a[1] - b[1]);
  const phaseSeconds: Record<string, number> = {};
  order.forEach(([phase, at], i) => (phaseSeconds[phase] = seconds((order[i + 1]?.[1] ?? ended) - at)));
  return {
    exitCode: code,
    output: stdoutText.trim(),
    seconds: seconds(ended - started),
    phaseSeconds,
    sampledPeakRssBytes: sampler.peaks(),
    peakRssBytes: peakRss(),
  };
}

/** Inputs of one UNet call: a smooth pattern, a mid-schedule timestep, a small context (the values do not change the work). */
function unetFeeds(model: SdModel, batch: number, side: number) {
  const channels = model.info.unetInChannels;
  const hidden = model.info.hiddenSize;
  const sample = new Float32Array(batch * channels * side * side);
  for (let i = 0; i < sample.length; i++) sample[i] = Math.sin(i * 0.37);
  const context = new Float32Array(batch * 77 * hidden);
  for (let i = 0; i < context.length; i++) context[i] = 0.5 * Math.cos(i * 0.11);
  return {
    sample: { kind: "float" as const, data: sample, dims: [batch, channels, side, side] },
    timestep: { kind: "float" as const, data: Float32Array.of(500), dims: [1] },
    encoder_hidden_states: { kind: "float" as const, data: context, dims: [batch, 77, hidden] },
  };
}

/** One timed UNet call; whether its output is finite, and its spread (random weights must keep activations in range). */
async function unetCall(model: SdModel, batch: number, side: number): Promise<{ seconds: number; finite: boolean; std: number }> {
  const feeds = unetFeeds(model, batch, side);
  const started = performance.now();
  const out = await model.unet.run(feeds, ["out_sample"]);
  const elapsed = seconds(performance.now() - started);
  const data = out.out_sample.data;
  let finite = true;
  let sum = 0;
  let squares = 0;
  for (const v of data) {
    if (!Number.isFinite(v)) finite = false;
    sum += v;
    squares += v * v;
  }
  const mean = sum / data.length;
  return { seconds: elapsed, finite, std: Math.sqrt(Math.max(0, squares / data.length - mean * mean)) };
}

const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
};

/** Load as the engine does (CPU defaults, warm-up), then batch-1 and batch-2 calls at 64×64 latents. */
async function steps(dir: string, calls: number, batch2Calls: number): Promise<Result> {
  const engine = new OnnxEngine();
  const sampler = new RssSampler(["load", "warmUp", "batch1", "batch2"] as const);
  try {
    sampler.enter("load");
    const partSeconds: Record<string, number> = {};
    const started = performance.now();
    let last = started;
    let warmUpStarted = Number.NaN;
    const model = await engine.model(dir, (_loaded, _total, part) => {
      const now = performance.now();
      if (isConversionPhase(part)) return;
      if (part === WARM_UP_PHASE) {
        warmUpStarted = now;
        sampler.enter("warmUp");
      } else partSeconds[part] = seconds(now - last);
      last = now;
    });
    const ready = performance.now();
    const loadedRss = rss();
    say(`loaded in ${seconds(warmUpStarted - started).toFixed(1)} s, warm-up ${seconds(ready - warmUpStarted).toFixed(1)} s`);
    sampler.enter("batch1");
    const batch1: number[] = [];
    let finite = true;
    let std = 0;
    for (let i = 0; i < calls; i++) {
      const call = await unetCall(model, 1, 64);
      batch1.push(call.seconds);
      finite &&= call.finite;
      std = call.std;
      say(`batch-1 call ${i + 1}: ${call.seconds.toFixed(2)} s (output finite: ${call.finite}, std ${call.std.toFixed(3)})`);
    }
    const afterBatch1Peak = peakRss();
    sampler.enter("batch2");
    const batch2: number[] = [];
    for (let i = 0; i < batch2Calls; i++) {
      const call = await unetCall(model, 2, 64);
      batch2.push(call.seconds);
      finite &&= call.finite;
      say(`batch-2 call ${i + 1}: ${call.seconds.toFixed(2)} s (output finite: ${call.finite})`);
    }
    await sampler.stop();
    return {
      loadSeconds: seconds(warmUpStarted - started),
      partSeconds,
      warmUpSeconds: seconds(ready - warmUpStarted),
      loadedRssBytes: loadedRss,
      batch1Seconds: batch1,
      batch1MedianSeconds: batch1.length ? median(batch1) : Number.NaN,
      // The batch-2 shape's first call is a first run for onnxruntime (planning, first touch): the later ones are steady.
      batch2Seconds: batch2,
      batch2SteadySeconds: batch2.length > 1 ? median(batch2.slice(1)) : batch2[0] ?? Number.NaN,
      outputFinite: finite,
      outputStd: std,
      peakRssAfterBatch1Bytes: afterBatch1Peak,
      sampledPeakRssBytes: sampler.peaks(),
      peakRssBytes: peakRss(),
    };
  } finally {
    await engine.release();
  }
}

function testPicture(size: number) {
  const data = new Uint8Array(size * size * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) % 251;
  const maskData = new Uint8Array(size * size);
  for (let y = size / 4; y < (3 * size) / 4; y++) maskData.fill(255, y * size + size / 4, y * size + (3 * size) / 4);
  return { image: { width: size, height: size, data }, mask: { width: size, height: size, data: maskData } };
}

/** One whole inpaint through the engine with its CPU defaults (sequential guidance, only the UNet held, no arena). */
async function inpaint(dir: string, stepCount: number, size: number): Promise<Result> {
  const engine = new OnnxEngine();
  const sampler = new RssSampler(["load", "job"] as const);
  try {
    sampler.enter("load");
    const started = performance.now();
    const model = await engine.model(dir);
    const loaded = performance.now();
    const loadedRss = rss();
    const peakAfterLoad = peakRss();
    sampler.enter("job");
    const stepUnetMs: number[] = [];
    let unetBefore = model.unet.runMs;
    const { image, mask } = testPicture(size);
    const result = await engine.inpaint(
      { image, mask, prompt: "a red chair by a window", negativePrompt: "", scheduler: "DDIM", steps: stepCount, guidance: 7.5, strength: 1, seed: 1n, samples: 1, width: size, height: size },
      {
        modelDir: dir,
        onStep: () => {
          stepUnetMs.push(model.unet.runMs - unetBefore);
          unetBefore = model.unet.runMs;
          say(`step ${stepUnetMs.length}: UNet ${seconds(stepUnetMs[stepUnetMs.length - 1]).toFixed(1)} s, peak RSS ${(peakRss() / 1e9).toFixed(2)} GB`);
        },
      },
    );
    const jobPeak = peakRss();
    await sampler.stop();
    const pixels = result.images[0].data;
    let lo = 255;
    let hi = 0;
    for (const v of pixels) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return {
      loadAndWarmUpSeconds: seconds(loaded - started),
      loadedRssBytes: loadedRss,
      peakRssAfterLoadBytes: peakAfterLoad,
      jobSeconds: seconds(result.totalMs),
      stepUnetSeconds: stepUnetMs.map(seconds),
      textEncodeSeconds: seconds(model.textEncoder.runMs),
      vaeEncodeSeconds: seconds(model.vaeEncoder.runMs),
      vaeDecodeSeconds: seconds(model.vaeDecoder.runMs),
      unetSampleDims: result.unetSampleDims.join("×"),
      pixelRange: `${lo}–${hi}`,
      sampledPeakRssBytes: sampler.peaks(),
      peakRssBytes: jobPeak,
    };
  } finally {
    await engine.release();
  }
}

/** The sessions as the engine opens them on CPU (no warm-up), then UNet calls at one shape. */
async function unet(dir: string, side: number, batch: number, calls: number): Promise<Result> {
  const sampler = new RssSampler(["load", "call"] as const);
  sampler.enter("load");
  const started = performance.now();
  const model = await loadSdModel(dir, { device: "cpu", guidanceCalls: "sequential", residentSessions: "unet" });
  try {
    const loadSeconds = seconds(performance.now() - started);
    const loadedRss = rss();
    sampler.enter("call");
    const times: number[] = [];
    let finite = true;
    for (let i = 0; i < calls; i++) {
      const call = await unetCall(model, batch, side);
      times.push(call.seconds);
      finite &&= call.finite;
      say(`${side}×${side} batch-${batch} call ${i + 1}: ${call.seconds.toFixed(1)} s, peak RSS ${(peakRss() / 1e9).toFixed(2)} GB (output finite: ${call.finite}, std ${call.std.toFixed(3)})`);
    }
    await sampler.stop();
    return { loadSeconds, loadedRssBytes: loadedRss, callSeconds: times, outputFinite: finite, sampledPeakRssBytes: sampler.peaks(), peakRssBytes: peakRss() };
  } finally {
    await model.release();
  }
}

interface SessionRun {
  /** The session's folder: text_encoder, unet, vae_encoder, vae_decoder. */
  readonly part: string;
  readonly start: number;
  readonly end: number;
  readonly finite: boolean;
}

/**
 * `maskflow run` of a workflow file in this process, with the engine's phases timed exactly: the first
 * OnnxEngine.model() call (the Inpaint node asking for its model) starts the build of a LoRA recipe (none for a
 * plain folder); the first OnnxSession.create() starts the load of the four sessions; the first UNet run is the
 * warm-up; model() resolving ends the load; the saved file's path on stdout ends the job (SaveImage has written it).
 */
async function workflow(file: string, modelsDir: string, out: string, data: string, model: string | undefined): Promise<Result> {
  process.env.MASKFLOW_MODELS_DIR = modelsDir;
  const sampler = new RssSampler(["start", "build", "load", "job", "end"] as const);
  sampler.enter("start");
  const marks: { modelAsked?: number; firstSession?: number; ready?: number; saved?: number } = {};
  const runs: SessionRun[] = [];

  const originalModel = OnnxEngine.prototype.model;
  OnnxEngine.prototype.model = function (this: OnnxEngine, ...args: Parameters<typeof originalModel>) {
    if (marks.modelAsked === undefined) {
      marks.modelAsked = performance.now();
      sampler.enter("build");
    }
    const loading = originalModel.apply(this, args);
    loading.then(
      () => {
        if (marks.ready === undefined) {
          marks.ready = performance.now();
          sampler.enter("job");
        }
      },
      () => {},
    );
    return loading;
  };
  const originalCreate = OnnxSession.create.bind(OnnxSession);
  OnnxSession.create = async (...args: Parameters<typeof OnnxSession.create>) => {
    if (marks.firstSession === undefined) {
      marks.firstSession = performance.now();
      sampler.enter("load");
    }
    return originalCreate(...args);
  };
  const originalRun = OnnxSession.prototype.run;
  OnnxSession.prototype.run = async function (this: OnnxSession, ...args: Parameters<typeof originalRun>) {
    const start = performance.now();
    const outputs = await originalRun.apply(this, args);
    const end = performance.now();
    const part = path.basename(path.dirname(this.file));
    let finite = true;
    for (const tensor of Object.values(outputs)) {
      for (const v of tensor.data) {
        if (!Number.isFinite(v)) {
          finite = false;
          break;
        }
      }
    }
    runs.push({ part, start, end, finite });
    return outputs;
  };

  // The CLI's progress lines pass through; the first line of each build phase is noted (lines come at most
  // once a second and at each phase's end, so these are ±1 s).
  const buildPhaseSeen: Record<string, number> = {};
  const stderr = passLines((line) => {
    const phase = /: reading checkpoint/.test(line) ? "reading" : /: building (\w+)/.exec(line)?.[1];
    if (phase && !(phase in buildPhaseSeen)) buildPhaseSeen[phase] = performance.now();
  });
  let stdoutText = "";
  const stdout = new Writable({
    write(chunk: Buffer, _encoding, done) {
      marks.saved ??= performance.now();
      stdoutText += chunk.toString("utf8");
      process.stderr.write(chunk);
      done();
    },
  });
  const args = ["run", file, "--out", out, "--data", data, ...(model ? ["--model", model] : [])];
  say(`maskflow ${args.join(" ")} (MASKFLOW_MODELS_DIR=${modelsDir})`);
  const started = performance.now();
  const code = await maskflowMain(args, { stdout, stderr });
  const ended = performance.now();
  sampler.enter("end");
  await sampler.stop();
  OnnxEngine.prototype.model = originalModel;
  OnnxSession.create = originalCreate;
  OnnxSession.prototype.run = originalRun;
  if (code !== 0 || marks.modelAsked === undefined || marks.firstSession === undefined || marks.ready === undefined || marks.saved === undefined) {
    return { exitCode: code, output: stdoutText.trim(), seconds: seconds(ended - started) };
  }
  const { modelAsked, firstSession, ready, saved } = marks;
  const unet = runs.filter((r) => r.part === "unet");
  const warmUp = unet.find((r) => r.start >= firstSession && r.end <= ready + 1);
  const job = runs.filter((r) => r.start >= ready);
  const jobUnet = job.filter((r) => r.part === "unet").map((r) => seconds(r.end - r.start));
  const partSeconds = (part: string) => seconds(job.filter((r) => r.part === part).reduce((sum, r) => sum + (r.end - r.start), 0));
  return {
    exitCode: code,
    output: stdoutText.trim(),
    wholeRunSeconds: seconds(saved - started),
    beforeModelSeconds: seconds(modelAsked - started),
    buildSeconds: seconds(firstSession - modelAsked),
    buildPhaseStartSeconds: Object.fromEntries(Object.entries(buildPhaseSeen).map(([phase, at]) => [phase, seconds(at - modelAsked)])),
    loadSeconds: seconds((warmUp?.start ?? ready) - firstSession),
    warmUpSeconds: warmUp ? seconds(ready - warmUp.start) : Number.NaN,
    jobSeconds: seconds(saved - ready),
    jobUnetCalls: jobUnet.length,
    jobUnetSeconds: jobUnet,
    jobUnetTotalSeconds: jobUnet.reduce((a, b) => a + b, 0),
    jobUnetMedianSeconds: jobUnet.length ? median(jobUnet) : Number.NaN,
    textEncoderSeconds: partSeconds("text_encoder"),
    vaeEncoderSeconds: partSeconds("vae_encoder"),
    vaeDecoderSeconds: partSeconds("vae_decoder"),
    unetOutputsFinite: unet.every((r) => r.finite),
    afterSaveSeconds: seconds(ended - saved),
    sampledPeakRssBytes: sampler.peaks(),
    peakRssBytes: peakRss(),
  };
}

async function run(argv: readonly string[]): Promise<Result> {
  const [mode, ...args] = argv;
  const loadAverage = os.loadavg().map((v) => v.toFixed(2)).join(" ");
  let result: Result;
  switch (mode) {
    case "import":
      result = await importCheckpoint(args[0], args[1], args[2]);
      break;
    case "steps":
      result = await steps(args[0], option(args, "--calls", 3), option(args, "--batch2", 2));
      break;
    case "inpaint":
      result = await inpaint(args[0], option(args, "--steps", 2), option(args, "--size", 512));
      break;
    case "unet":
      result = await unet(args[0], option(args, "--side", 128), option(args, "--batch", 1), option(args, "--calls", 1));
      break;
    case "workflow": {
      const at = args.indexOf("--model");
      result = await workflow(args[0], args[1], args[2], args[3], at >= 0 ? args[at + 1] : undefined);
      break;
    }
    default:
      throw new Error(`checkpoint-build child: unknown mode ${mode}`);
  }
  return { loadAverageAtStart: loadAverage, loadAverageAtEnd: os.loadavg().map((v) => v.toFixed(2)).join(" "), ...result };
}

run(process.argv.slice(2)).then(
  (result) => {
    process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
    // onnxruntime's and the build's worker threads must not keep a finished measurement alive.
    process.exit(0);
  },
  (error: unknown) => {
    process.stderr.write(`checkpoint-build child: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
