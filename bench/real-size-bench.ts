/**
 * `bench real-size --model DIR [--steps N] [--size PX] [--json]`: the whole local pipeline on one model
 * folder (a real-size export from scripts/real-size, or the tiny test model), one sample, DDIM with
 * guidance 7.5: load time per session and the warm-up, the UNet's first and steady step, text and VAE
 * time, peak RSS and RSS when idle after the job, and the UNet's achieved GFLOPS against the machine's
 * fp32 peak. Memory settings can be varied for study: --arena, --mem-pattern, --prepack on|off,
 * --optimization disabled|basic|extended|all, --guidance-calls batched|sequential and --resident all|unet.
 * --device cuda runs it on onnxruntime's CUDA provider (scripts/real-size/gpu-bench.sh prepares that run);
 * RSS is then the host's, and the GFLOPS are not set against the CPU's peak.
 */
import os from "node:os";
import path from "node:path";
import type { Mask, RgbImage } from "../nodes/socket-types.ts";
import { OnnxEngine, parseDevice } from "../server/engines/onnx/onnx-engine.ts";
import { isConversionPhase } from "../server/engines/onnx/fp32-cache.ts";
import { WARM_UP_PHASE } from "../server/engines/onnx/unet-warm-up.ts";
import type { DeviceName, SessionTuning } from "../server/engines/onnx/onnx-session.ts";
import type { GuidanceCalls, ResidentSessions } from "../server/engines/onnx/sd-model.ts";
import { estimateFp32Peak } from "./cpu-peak.ts";
import { countMultiplyAdds } from "./onnx-multiply-adds.ts";
import { RssSampler } from "./rss-sampler.ts";

interface RealSizeArgs {
  readonly model: string;
  readonly device: DeviceName;
  readonly steps: number;
  readonly size: number;
  readonly tuning: Partial<SessionTuning>;
  readonly guidanceCalls?: GuidanceCalls;
  readonly residentSessions?: ResidentSessions;
}

const OPTIMIZATION_LEVELS = ["disabled", "basic", "extended", "all"] as const;

function parseArgs(argv: readonly string[]): RealSizeArgs | undefined {
  const value = (flag: string): string | undefined => {
    const at = argv.indexOf(flag);
    if (at < 0) return undefined;
    const next = argv[at + 1];
    if (next === undefined || next.startsWith("--")) throw new Error(`real-size: ${flag} needs a value`);
    return next;
  };
  const model = value("--model");
  if (model === undefined) return undefined;
  const whole = (flag: string, fallback: number, min: number, max: number, multipleOf = 1): number => {
    const text = value(flag);
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max || n % multipleOf !== 0) {
      throw new Error(`real-size: ${flag} must be a whole number from ${min} to ${max}${multipleOf > 1 ? `, a multiple of ${multipleOf}` : ""}; got "${text}"`);
    }
    return n;
  };
  const onOff = (flag: string): boolean | undefined => {
    const text = value(flag);
    if (text === undefined) return undefined;
    if (text !== "on" && text !== "off") throw new Error(`real-size: ${flag} must be on or off; got "${text}"`);
    return text === "on";
  };
  const optimization = value("--optimization");
  if (optimization !== undefined && !(OPTIMIZATION_LEVELS as readonly string[]).includes(optimization)) {
    throw new Error(`real-size: --optimization must be one of ${OPTIMIZATION_LEVELS.join(", ")}; got "${optimization}"`);
  }
  const tuning: { -readonly [K in keyof SessionTuning]?: SessionTuning[K] } = {};
  const arena = onOff("--arena");
  if (arena !== undefined) tuning.cpuMemArena = arena;
  const pattern = onOff("--mem-pattern");
  if (pattern !== undefined) tuning.memPattern = pattern;
  const prepack = onOff("--prepack");
  if (prepack !== undefined) tuning.prepacking = prepack;
  if (optimization !== undefined) tuning.optimization = optimization as SessionTuning["optimization"];
  const guidanceCalls = value("--guidance-calls");
  if (guidanceCalls !== undefined && guidanceCalls !== "batched" && guidanceCalls !== "sequential") {
    throw new Error(`real-size: --guidance-calls must be batched or sequential; got "${guidanceCalls}"`);
  }
  const residentSessions = value("--resident");
  if (residentSessions !== undefined && residentSessions !== "all" && residentSessions !== "unet") {
    throw new Error(`real-size: --resident must be all or unet; got "${residentSessions}"`);
  }
  const deviceText = value("--device") ?? "cpu";
  let device: DeviceName;
  try {
    device = parseDevice(deviceText);
  } catch (error) {
    throw new Error(`real-size: --${(error as Error).message}`);
  }
  return { model: path.resolve(model), device, steps: whole("--steps", 4, 1, 500), size: whole("--size", 512, 64, 2048, 8), tuning, guidanceCalls, residentSessions };
}

function testPicture(size: number): { image: RgbImage; mask: Mask } {
  const data = new Uint8Array(size * size * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) % 251;
  const maskData = new Uint8Array(size * size);
  for (let y = size / 4; y < (3 * size) / 4; y++) maskData.fill(255, y * size + size / 4, y * size + (3 * size) / 4);
  return { image: { width: size, height: size, data }, mask: { width: size, height: size, data: maskData } };
}

const rss = () => process.memoryUsage.rss();
const peakRss = () => process.resourceUsage().maxRSS * 1024;
const seconds = (ms: number) => ms / 1000;
const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
};

export async function benchRealSize(argv: readonly string[] = process.argv.slice(2)): Promise<Record<string, number | string>> {
  const args = parseArgs(argv);
  if (!args) return { "real-size": "skipped: give --model DIR (a folder from scripts/real-size/make_real_size_model.py)" };
  const { model: dir, device, steps, size, tuning, guidanceCalls, residentSessions } = args;
  const engine = new OnnxEngine({ device, tuning, guidanceCalls, residentSessions });
  const loadAverageBefore = os.loadavg();
  const rssBefore = rss();
  // Peak RSS per phase: "firstStep" runs from the job's start (text encoder, VAE encode) to step 1's end.
  const sampler = new RssSampler(["load", "warmUp", "firstStep", "laterSteps", "decode"] as const);
  try {
    // Load: the time of each session, from the progress the engine reports as each one arrives, then the warm-up.
    const partSeconds: Record<string, number> = {};
    let last = performance.now();
    const loadStarted = last;
    let warmUpStarted = Number.NaN;
    // fp16 parts converted to fp32 for the CPU (first load only): the part's load time includes its conversion.
    const converted: string[] = [];
    sampler.enter("load");
    const model = await engine.model(dir, (_loaded, _total, part) => {
      const now = performance.now();
      if (isConversionPhase(part)) {
        converted.push(part);
        return;
      }
      if (part === WARM_UP_PHASE) {
        warmUpStarted = now;
        sampler.enter("warmUp");
      }
      else partSeconds[part] = seconds(now - last);
      last = now;
    });
    const readySeconds = seconds(performance.now() - loadStarted);
    // Sessions, tokenizer and checks; the warm-up call is reported on its own.
    const loadSeconds = Number.isNaN(warmUpStarted) ? readySeconds : seconds(warmUpStarted - loadStarted);
    const warmUpSeconds = Number.isNaN(warmUpStarted) ? 0 : seconds(performance.now() - warmUpStarted);
    const loadedRss = rss();
    const peakAfterLoad = peakRss();

    // The job: UNet time per step from the session's own clock, read at every step's end.
    const unetMs: number[] = [];
    const stepRss: number[] = [];
    let unetBefore = model.unet.runMs;
    const textBefore = model.textEncoder.runMs;
    const encodeBefore = model.vaeEncoder.runMs;
    const decodeBefore = model.vaeDecoder.runMs;
    const reopenBefore = model.textEncoder.reloadMs + model.vaeEncoder.reloadMs + model.vaeDecoder.reloadMs;
    sampler.enter("firstStep");
    const { image, mask } = testPicture(size);
    const result = await engine.inpaint(
      { image, mask, prompt: "a red chair by a window", negativePrompt: "", scheduler: "DDIM", steps, guidance: 7.5, strength: 1, seed: 1n, samples: 1, width: size, height: size },
      {
        modelDir: dir,
        onStep: () => {
          unetMs.push(model.unet.runMs - unetBefore);
          stepRss.push(rss());
          sampler.enter(unetMs.length === steps ? "decode" : "laterSteps");
          unetBefore = model.unet.runMs;
        },
      },
    );
    sampler.enter("decode");
    // Idle: what the process keeps between jobs, once the job's garbage had a moment to go.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const idleRss = rss();
    const peakAfterJob = peakRss();

    const firstStep = seconds(unetMs[0]);
    const stepSeconds = unetMs.length > 1 ? seconds(median(unetMs.slice(1))) : firstStep;
    const [batch, channels, latentHeight, latentWidth] = result.unetSampleDims;
    const callsPerStep = batch === 2 ? 1 : 2; // guidance 7.5: one batched call, or two when the UNet is fixed to batch 1
    const hiddenSize = model.info.hiddenSize;
    const count = await countMultiplyAdds(path.join(dir, "unet", "model.onnx"), {
      sample: [batch, channels, latentHeight, latentWidth],
      timestep: [1],
      encoder_hidden_states: [batch, 77, hiddenSize],
    });
    const gflops = (2 * count.multiplyAdds * callsPerStep) / stepSeconds / 1e9;
    const peak = estimateFp32Peak();
    const report: Record<string, number | string> = {
      model: dir,
      size: `${size}x${size}, ${steps} DDIM steps, guidance 7.5, 1 sample, ${model.info.floatType}`,
      device,
      tuning: JSON.stringify({ ...tuning, ...(guidanceCalls ? { guidanceCalls } : {}), ...(residentSessions ? { residentSessions } : {}) }),
      loadAverage: loadAverageBefore.map((v) => v.toFixed(2)).join(" "),
      loadSeconds,
    };
    for (const [part, s] of Object.entries(partSeconds)) report[`loadSeconds.${part}`] = s;
    report.fp16OnCpu = device === "cpu" && model.info.floatType === "float16" ? `${engine.fp16OnCpu}${converted.length ? `; ${converted.join(", ")}` : ""}` : "n/a";
    report.warmUpSeconds = warmUpSeconds;
    report.readySeconds = readySeconds;
    Object.assign(report, {
      firstStepSeconds: firstStep,
      stepSeconds,
      firstToSteadyRatio: firstStep / stepSeconds,
      // Each includes reopening its session when the engine keeps only the UNet open (reopenSeconds in all).
      textEncodeSeconds: seconds(model.textEncoder.runMs - textBefore),
      vaeEncodeSeconds: seconds(model.vaeEncoder.runMs - encodeBefore),
      vaeDecodeSeconds: seconds(model.vaeDecoder.runMs - decodeBefore),
      reopenSeconds: seconds(model.textEncoder.reloadMs + model.vaeEncoder.reloadMs + model.vaeDecoder.reloadMs - reopenBefore),
      jobSeconds: seconds(result.totalMs),
      rssBeforeLoadBytes: rssBefore,
      loadedRssBytes: loadedRss,
      peakRssAfterLoadBytes: peakAfterLoad,
      rssAfterFirstStepBytes: stepRss[0],
      rssAfterLastStepBytes: stepRss[stepRss.length - 1],
      ...Object.fromEntries(Object.entries(sampler.peaks()).map(([phase, bytes]) => [`sampledPeakRssBytes.${phase}`, bytes])),
      peakRssBytes: peakAfterJob,
      idleRssBytes: idleRss,
      unetMultiplyAddsPerCall: count.multiplyAdds,
      unetUncountedNodes: count.uncountedNodes,
      unetGflops: gflops,
      vaeTiled: String(result.vaeTiled),
    });
    if (device === "cpu") Object.assign(report, { cpuPeakGflops: peak.gflops, cpuPeakShare: gflops / peak.gflops, cpuPeakFormula: peak.formula });
    if (count.unknownOps.length) report.unetShapeGaps = count.unknownOps.join(", ");
    return report;
  } finally {
    await sampler.stop();
    await engine.release();
  }
}
