/**
 * `bench checkpoint-build [--f16] [--phases write,import,steps,inpaint,unet1024,lcm] [--dir DIR] [--calls N]
 * [--batch2 N] [--inpaint-steps N] [--compare DIR] [--clean] [--json]`: Maskflow's own ONNX graphs built from a
 * full-size SD 1.5 inpainting checkpoint, measured.
 *
 *   write     a single-file LDM / A1111 checkpoint (.safetensors, F32, or F16 with --f16) with seeded random
 *             weights (±1/√fan_in), streamed one tensor at a time (scripts/checkpoints/write-random-checkpoint.ts),
 *             1.07 G parameters, 4.27 GB (F32); cached in DIR between runs, stamped with the generator's version
 *   import    `maskflow models import` of it, from scratch (content hash included): time per phase, peak RSS
 *   steps     the built folder loaded as the engine loads it (CPU defaults, warm-up), then batch-1 and batch-2
 *             UNet calls at 64×64 latents (512²): load time, call times, the UNet's GFLOPS
 *   inpaint   one 512² inpaint through OnnxEngine (DDIM, guidance 7.5, --inpaint-steps steps): peak RSS
 *   unet1024  one batch-1 UNet call at 128×128 latents (1024²): time and peak RSS
 *   lcm       issue 23's side by side (only when named: --phases lcm): a random LoRA of LCM-LoRA's layout
 *             (scripts/checkpoints/write-random-lora.ts) as <models>/loras/lcm-lora-sdv1-5.safetensors, the
 *             checkpoint imported as <models>/sd15-inpainting, then `maskflow run workflows/lcm-inpaint.json` and
 *             `maskflow run workflows/inpaint.json --model <models>/sd15-inpainting`, each at its shipped settings
 *             in a process of its own: the LoRA-merged build (first time: earlier builds in <models>/.built are
 *             removed, the content-hash memo kept), the load (four sessions, warm-up) apart, the inpaint after
 *             load, UNet calls and their time, peak RSS
 *
 * Each measurement runs in a process of its own (bench/checkpoint-build-child.ts), so its peak RSS is its own.
 * --compare DIR runs `steps` on an optimum-layout export too (scripts/real-size/make_real_size_model.py makes
 * one with torch) for the same machine and load; without it the README's figures for that export are quoted.
 * The bench's files (the checkpoint, the built model: 8.5 GB in all) stay in DIR (default bench/.checkpoint-build,
 * git-ignored) for the next run; --clean deletes them. It runs only when named: `npm run bench` alone skips it.
 */
import { spawn } from "node:child_process";
import { mkdir, readdir, readFile, rm, stat, statfs, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { writeRandomCheckpoint, type CheckpointFloat } from "../scripts/checkpoints/write-random-checkpoint.ts";
import { writeRandomLcmLora } from "../scripts/checkpoints/write-random-lora.ts";
import { BUILD_STAMP, readBuildStamp } from "../server/models/checkpoint/build-stamp.ts";
import { BUILT_MODELS_FOLDER } from "../server/models/checkpoint/built-model-cache.ts";
import { MEMO_FILE } from "../server/models/checkpoint/checkpoint-content-key.ts";

/** Bump when the written checkpoint's bytes change (the generator or its layout): a cached file is rewritten. */
const CHECKPOINT_VERSION = 1;
const SEED = 1505;
const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.dirname(HERE);
const DEFAULT_DIR = path.join(HERE, ".checkpoint-build");
const CHILD = path.join(HERE, "checkpoint-build-child.ts");
const RESULT_PREFIX = "CHECKPOINT_BUILD_RESULT ";
const PHASES = ["write", "import", "steps", "inpaint", "unet1024", "lcm"] as const;
type Phase = (typeof PHASES)[number];
/** What runs when --phases is not given: lcm (two whole workflows, about 7 minutes) only when named. */
const DEFAULT_PHASES: readonly Phase[] = ["write", "import", "steps", "inpaint", "unet1024"];
/** The names workflows/lcm-inpaint.json's loaders give. */
const LCM_MODEL_NAME = "sd15-inpainting";
const LCM_LORA_FILE = "lcm-lora-sdv1-5.safetensors";
/** The issue's goal for the 4-step inpaint once the model is loaded. */
const LCM_GOAL_SECONDS = 60;
/** Free disk the build needs beside the checkpoint: its fp32 graphs (4.27 GB) and some room. */
const BUILD_BYTES = 4.6e9;
/** The checkpoint's size. */
const CHECKPOINT_BYTES: Record<CheckpointFloat, number> = { F32: 4.27e9, F16: 2.14e9 };
/** SD 1.5's UNet at batch 1 and 64×64 latents, counted on the optimum export's graph (README, "Real-size models"). */
const UNET_MULTIPLY_ADDS_512 = 401.7e9;

/** The optimum fp32 export's figures (README, "Real-size models"), for when no such export is on the machine. */
const OPTIMUM_EXPORT_FIGURES =
  "optimum fp32 export (README, Real-size models): load 10.0 s (UNet 7.9 s) at load avg 0.6; CPU-default step (two batch-1 calls) 11.5 s at load 0.6 and 11.2 s at 1.6; " +
  "one batched (batch-2) call 11.0 s at load 1.1; 512² job peak RSS 5.91 / 5.89 GB; 1024² UNet not runnable (8.6 GB attention score tensor, twice)";

interface Args {
  readonly dir: string;
  readonly float: CheckpointFloat;
  readonly phases: ReadonlySet<Phase>;
  readonly calls: number;
  readonly batch2: number;
  readonly inpaintSteps: number;
  readonly compare?: string;
  readonly clean: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const value = (flag: string): string | undefined => {
    const at = argv.indexOf(flag);
    if (at < 0) return undefined;
    const next = argv[at + 1];
    if (next === undefined || next.startsWith("--")) throw new Error(`checkpoint-build: ${flag} needs a value`);
    return next;
  };
  const whole = (flag: string, fallback: number, min: number, max: number): number => {
    const text = value(flag);
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`checkpoint-build: ${flag} must be a whole number from ${min} to ${max}; got "${text}"`);
    return n;
  };
  const phaseList = (value("--phases") ?? DEFAULT_PHASES.join(",")).split(",").filter(Boolean);
  for (const phase of phaseList) {
    if (!(PHASES as readonly string[]).includes(phase)) throw new Error(`checkpoint-build: --phases takes ${PHASES.join(", ")}; got "${phase}"`);
  }
  const compare = value("--compare");
  return {
    dir: path.resolve(value("--dir") ?? DEFAULT_DIR),
    float: argv.includes("--f16") ? "F16" : "F32",
    phases: new Set(phaseList as Phase[]),
    calls: whole("--calls", 3, 1, 20),
    batch2: whole("--batch2", 2, 0, 20),
    inpaintSteps: whole("--inpaint-steps", 2, 1, 50),
    compare: compare === undefined ? undefined : path.resolve(compare),
    clean: argv.includes("--clean"),
  };
}

type ChildResult = Record<string, unknown>;

/** Runs one measurement in its own process; its stderr is passed through as progress. */
function child(args: readonly string[]): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const process_ = spawn(process.execPath, [path.join(REPO, "bin", "run-ts.js"), CHILD, ...args], { cwd: REPO, stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    process_.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    process_.once("error", reject);
    process_.once("close", (code, signal) => {
      const line = stdout.split("\n").find((l) => l.startsWith(RESULT_PREFIX));
      if (code === 0 && line) resolve(JSON.parse(line.slice(RESULT_PREFIX.length)) as ChildResult);
      else reject(new Error(`checkpoint-build: the ${args[0]} measurement ${signal ? `was killed (${signal})` : `exited with ${code}`}: ${stdout.trim().slice(-500)}`));
    });
  });
}

const gb = (bytes: unknown) => Number(bytes) / 1e9;
const loadAverage = () => os.loadavg().map((v) => v.toFixed(2)).join(" ");
const verdict = (value: number, limit: number) => (value < limit ? "PASS" : "FAIL");
const exists = (file: string) => stat(file).then(() => true, () => false);

async function freeBytes(dir: string): Promise<number> {
  const info = await statfs(dir);
  return info.bavail * info.bsize;
}

interface Stamp {
  readonly generator: string;
  readonly version: number;
  readonly seed: number;
  readonly float: CheckpointFloat;
  readonly bytes: number;
}

/** The cached checkpoint, written when missing or stamped by another version. */
async function ensureCheckpoint(dir: string, float: CheckpointFloat, report: Record<string, number | string>): Promise<string> {
  const file = path.join(dir, `sd15-inpainting-random-${float.toLowerCase()}.safetensors`);
  const stampFile = `${file}.json`;
  const expected = { generator: "maskflow-checkpoint-build-bench", version: CHECKPOINT_VERSION, seed: SEED, float };
  const stamp = await readFile(stampFile, "utf8").then((text) => JSON.parse(text) as Stamp, () => undefined);
  const size = await stat(file).then((info) => info.size, () => -1);
  if (stamp && stamp.generator === expected.generator && stamp.version === expected.version && stamp.seed === SEED && stamp.float === float && stamp.bytes === size) {
    report["checkpoint-build: checkpoint"] = `${file} (cached, ${gb(size).toFixed(2)} GB, ${float})`;
    return file;
  }
  await rm(stampFile, { force: true });
  await rm(file, { force: true });
  const free = await freeBytes(dir);
  if (free < CHECKPOINT_BYTES[float] + BUILD_BYTES) {
    throw new Error(`checkpoint-build: ${gb(free).toFixed(1)} GB free in ${dir}; the checkpoint and its build need ${gb(CHECKPOINT_BYTES[float] + BUILD_BYTES).toFixed(1)} GB`);
  }
  process.stderr.write(`checkpoint-build: writing ${file}…\n`);
  const load = loadAverage();
  const started = performance.now();
  let shown = 0;
  const summary = await writeRandomCheckpoint(file, {
    float,
    seed: SEED,
    onProgress: (written, total) => {
      const percent = Math.floor((100 * written) / total);
      if (percent >= shown + 10) process.stderr.write(`checkpoint-build: written ${(shown = percent)} %\n`);
    },
  });
  const writeSeconds = (performance.now() - started) / 1000;
  await writeFile(stampFile, JSON.stringify({ ...expected, bytes: summary.bytes }, null, 2) + "\n");
  report["checkpoint-build: checkpoint"] = `${file} (${gb(summary.bytes).toFixed(2)} GB, ${float}, ${summary.tensors} tensors, ${summary.parameters} parameters)`;
  report["checkpoint-build: write, streamed (s)"] = writeSeconds;
  report["checkpoint-build: write: peak RSS of the bench process (GB)"] = gb(process.resourceUsage().maxRSS * 1024);
  report["checkpoint-build: write: load average at start"] = load;
  return file;
}

export async function benchCheckpointBuild(argv: readonly string[] = process.argv.slice(2)): Promise<Record<string, number | string>> {
  if (!argv.includes("checkpoint-build")) {
    return { "checkpoint-build": "skipped: name it (bench/index.ts checkpoint-build): it writes 4.3 GB, builds 4.3 GB more and runs for 5 minutes or more on 2 cores" };
  }
  const args = parseArgs(argv);
  if (args.clean) {
    await rm(args.dir, { recursive: true, force: true });
    return { "checkpoint-build": `removed ${args.dir}` };
  }
  await mkdir(args.dir, { recursive: true });
  const report: Record<string, number | string> = {
    "checkpoint-build: machine": `${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${new Date().toISOString().slice(0, 10)}`,
    "checkpoint-build: load average at start": loadAverage(),
  };
  const modelsDir = path.join(args.dir, "models");
  const name = `sd15-random-${args.float.toLowerCase()}`;
  const built = path.join(modelsDir, name);
  const phase = (p: Phase) => args.phases.has(p);

  const checkpoint = phase("write") || phase("import") || phase("lcm") ? await ensureCheckpoint(args.dir, args.float, report) : undefined;

  if (phase("import") && checkpoint) {
    // From scratch: the built folder and the content-keyed cache with its remembered hashes go first.
    await rm(built, { recursive: true, force: true });
    await rm(path.join(modelsDir, ".built"), { recursive: true, force: true });
    const free = await freeBytes(args.dir);
    if (free < BUILD_BYTES) throw new Error(`checkpoint-build: ${gb(free).toFixed(1)} GB free in ${args.dir}; the build needs ${gb(BUILD_BYTES).toFixed(1)} GB`);
    process.stderr.write(`checkpoint-build: maskflow models import ${checkpoint} --name ${name} --models ${modelsDir}\n`);
    const r = await child(["import", checkpoint, name, modelsDir]);
    if (r.exitCode !== 0) throw new Error(`checkpoint-build: models import failed (${String(r.exitCode)}); see its output above`);
    const phases = r.phaseSeconds as Record<string, number>;
    const peaks = r.sampledPeakRssBytes as Record<string, number>;
    report["checkpoint-build: import: load average at start → end"] = `${String(r.loadAverageAtStart)} → ${String(r.loadAverageAtEnd)}`;
    report["checkpoint-build: import, whole (s)"] = Number(r.seconds);
    for (const [part, s] of Object.entries(phases)) report[`checkpoint-build: import: ${part === "reading" ? "content hash" : `building ${part}`} (s)`] = s;
    report["checkpoint-build: import: peak RSS (GB)"] = gb(r.peakRssBytes);
    for (const [part, bytes] of Object.entries(peaks)) if (bytes > 0) report[`checkpoint-build: import: sampled peak RSS while ${part === "reading" ? "hashing" : `building ${part}`} (GB)`] = gb(bytes);
    report["checkpoint-build: import: peak RSS goal < 4 GB"] = verdict(gb(r.peakRssBytes), 4);
    report["checkpoint-build: import: output"] = String(r.output);
  }

  const needsBuilt = phase("steps") || phase("inpaint") || phase("unet1024");
  if (needsBuilt && !(await exists(path.join(built, "model_index.json")))) {
    throw new Error(`checkpoint-build: no built model at ${built}: run the import phase first (--phases import,…)`);
  }

  const stepFigures = (label: string, r: ChildResult) => {
    const batch1 = Number(r.batch1MedianSeconds);
    const batch2 = r.batch2Seconds as number[];
    report[`${label}: load average at start → end`] = `${String(r.loadAverageAtStart)} → ${String(r.loadAverageAtEnd)}`;
    report[`${label}: load, four sessions (s)`] = Number(r.loadSeconds);
    for (const [part, s] of Object.entries(r.partSeconds as Record<string, number>)) report[`${label}: load: ${part} (s)`] = s;
    report[`${label}: warm-up call (s)`] = Number(r.warmUpSeconds);
    report[`${label}: RSS once loaded (GB)`] = gb(r.loadedRssBytes);
    report[`${label}: batch-1 UNet call at 512², each (s)`] = (r.batch1Seconds as number[]).map((s) => s.toFixed(2)).join(", ");
    report[`${label}: batch-1 UNet call at 512², median (s)`] = batch1;
    report[`${label}: guided step on CPU (two batch-1 calls) (s)`] = 2 * batch1;
    report[`${label}: UNet GFLOPS at batch 1 (${(UNET_MULTIPLY_ADDS_512 / 1e9).toFixed(1)} G multiply-adds a call)`] = (2 * UNET_MULTIPLY_ADDS_512) / batch1 / 1e9;
    if (batch2.length) {
      report[`${label}: batch-2 UNet call at 512², each (s; the first is the shape's first run)`] = batch2.map((s) => s.toFixed(2)).join(", ");
      report[`${label}: batch-2 UNet call at 512², steady (s)`] = Number(r.batch2SteadySeconds);
    }
    report[`${label}: UNet output finite`] = String(r.outputFinite);
    report[`${label}: peak RSS, batch-1 calls (GB)`] = gb(r.peakRssAfterBatch1Bytes);
    report[`${label}: peak RSS with the batch-2 calls (GB)`] = gb(r.peakRssBytes);
  };

  if (phase("steps")) {
    process.stderr.write(`checkpoint-build: UNet steps at 512² on ${built}\n`);
    stepFigures("checkpoint-build: built", await child(["steps", built, "--calls", String(args.calls), "--batch2", String(args.batch2)]));
  }

  if (phase("inpaint")) {
    process.stderr.write(`checkpoint-build: a ${args.inpaintSteps}-step 512² inpaint on ${built}\n`);
    const r = await child(["inpaint", built, "--steps", String(args.inpaintSteps), "--size", "512"]);
    const peaks = r.sampledPeakRssBytes as Record<string, number>;
    report["checkpoint-build: inpaint 512²: load average at start → end"] = `${String(r.loadAverageAtStart)} → ${String(r.loadAverageAtEnd)}`;
    report["checkpoint-build: inpaint 512²: load and warm-up (s)"] = Number(r.loadAndWarmUpSeconds);
    report[`checkpoint-build: inpaint 512²: job, ${args.inpaintSteps} DDIM steps, guidance 7.5 (s)`] = Number(r.jobSeconds);
    report["checkpoint-build: inpaint 512²: UNet per step (s)"] = (r.stepUnetSeconds as number[]).map((s) => s.toFixed(2)).join(", ");
    report["checkpoint-build: inpaint 512²: text encoder / VAE encode / VAE decode (s)"] =
      `${Number(r.textEncodeSeconds).toFixed(2)} / ${Number(r.vaeEncodeSeconds).toFixed(2)} / ${Number(r.vaeDecodeSeconds).toFixed(2)}`;
    report["checkpoint-build: inpaint 512²: RSS once loaded (GB)"] = gb(r.loadedRssBytes);
    report["checkpoint-build: inpaint 512²: sampled peak RSS, load / job (GB)"] = `${gb(peaks.load).toFixed(2)} / ${gb(peaks.job).toFixed(2)}`;
    report["checkpoint-build: inpaint 512²: peak RSS (GB)"] = gb(r.peakRssBytes);
    report["checkpoint-build: inpaint 512²: peak RSS goal < 6 GB"] = verdict(gb(r.peakRssBytes), 6);
    report["checkpoint-build: inpaint 512²: picture's values"] = String(r.pixelRange);
  }

  if (phase("unet1024")) {
    process.stderr.write(`checkpoint-build: one UNet call at 1024² (128×128 latents) on ${built}\n`);
    const r = await child(["unet", built, "--side", "128", "--batch", "1", "--calls", "1"]);
    report["checkpoint-build: UNet 1024²: load average at start → end"] = `${String(r.loadAverageAtStart)} → ${String(r.loadAverageAtEnd)}`;
    report["checkpoint-build: UNet 1024²: load, four sessions, no warm-up (s)"] = Number(r.loadSeconds);
    report["checkpoint-build: UNet 1024²: RSS once loaded (GB)"] = gb(r.loadedRssBytes);
    report["checkpoint-build: UNet 1024²: batch-1 call, the shape's first run (s)"] = (r.callSeconds as number[])[0];
    report["checkpoint-build: UNet 1024²: output finite"] = String(r.outputFinite);
    report["checkpoint-build: UNet 1024²: peak RSS (GB)"] = gb(r.peakRssBytes);
    report["checkpoint-build: UNet 1024²: peak RSS goal < 8 GB"] = verdict(gb(r.peakRssBytes), 8);
  }

  if (phase("lcm") && checkpoint) await lcmAgainstDdim(checkpoint, modelsDir, args.dir, report);

  if (args.compare) {
    process.stderr.write(`checkpoint-build: UNet steps at 512² on the export ${args.compare}\n`);
    stepFigures("checkpoint-build: compared export", await child(["steps", args.compare, "--calls", String(args.calls), "--batch2", String(args.batch2)]));
  } else if (phase("steps")) {
    report["checkpoint-build: compared with"] = OPTIMUM_EXPORT_FIGURES;
  }
  report["checkpoint-build: files kept"] = `${args.dir} (remove with --clean)`;
  return report;
}

/**
 * Issue 23's figure: workflows/lcm-inpaint.json (LoRA-merged build on first use, LCM, 4 steps, guidance 1) against
 * workflows/inpaint.json (25 DDIM steps, guidance 7.5) on the same imported model, each through `maskflow run` in a
 * child process of its own (bench/checkpoint-build-child.ts, mode workflow), one after the other.
 */
async function lcmAgainstDdim(checkpoint: string, modelsDir: string, dir: string, report: Record<string, number | string>): Promise<void> {
  const label = "checkpoint-build: lcm";
  const cache = path.join(modelsDir, BUILT_MODELS_FOLDER);
  // First time for the LoRA-merged build: every earlier build in the cache goes, the remembered hashes stay
  // (as after `maskflow models pull`, which hashed the checkpoint it built).
  for (const entry of await readdir(cache).catch(() => [] as string[])) {
    if (entry !== MEMO_FILE) await rm(path.join(cache, entry), { recursive: true, force: true });
  }
  const loraFile = path.join(modelsDir, "loras", LCM_LORA_FILE);
  const loraStarted = performance.now();
  const lora = await writeRandomLcmLora(loraFile, { seed: SEED });
  report[`${label}: LoRA`] =
    `${loraFile}: random, LCM-LoRA's layout (kohya keys in diffusers naming, F16, rank 64, alpha 8): ${lora.modules} UNet modules, ` +
    `${lora.tensors} tensors, ${lora.values} values, ${lora.bytes} bytes, written in ${((performance.now() - loraStarted) / 1000).toFixed(1)} s`;

  const target = path.join(modelsDir, LCM_MODEL_NAME);
  const stamp = await readBuildStamp(target);
  const checkpointTime = (await stat(checkpoint)).mtimeMs;
  if (stamp && stamp.source === checkpoint && Date.parse(stamp.builtAt) > checkpointTime && (await exists(path.join(target, "model_index.json")))) {
    report[`${label}: ${LCM_MODEL_NAME}`] = `${target} (imported ${stamp.builtAt}, kept)`;
  } else {
    await rm(target, { recursive: true, force: true });
    const free = await freeBytes(dir);
    if (free < 2 * BUILD_BYTES) throw new Error(`checkpoint-build: ${gb(free).toFixed(1)} GB free in ${dir}; the import and the LoRA-merged build need ${gb(2 * BUILD_BYTES).toFixed(1)} GB`);
    process.stderr.write(`checkpoint-build: maskflow models import ${checkpoint} --name ${LCM_MODEL_NAME} --models ${modelsDir}\n`);
    const r = await child(["import", checkpoint, LCM_MODEL_NAME, modelsDir]);
    if (r.exitCode !== 0) throw new Error(`checkpoint-build: models import failed (${String(r.exitCode)}); see its output above`);
    report[`${label}: ${LCM_MODEL_NAME}`] = `${target} (imported now in ${Number(r.seconds).toFixed(1)} s, load average ${String(r.loadAverageAtStart)})`;
  }
  const free = await freeBytes(dir);
  if (free < BUILD_BYTES) throw new Error(`checkpoint-build: ${gb(free).toFixed(1)} GB free in ${dir}; the LoRA-merged build needs ${gb(BUILD_BYTES).toFixed(1)} GB`);

  const out = path.join(dir, "lcm-out");
  const data = path.join(dir, "lcm-data");
  const runs: Array<[string, string, string[]]> = [
    ["LCM 4 steps, guidance 1 (lcm-inpaint.json)", path.join(REPO, "workflows", "lcm-inpaint.json"), []],
    ["DDIM 25 steps, guidance 7.5 (inpaint.json)", path.join(REPO, "workflows", "inpaint.json"), ["--model", target]],
  ];
  const jobs: number[] = [];
  for (const [name, workflowFile, extra] of runs) {
    await rm(out, { recursive: true, force: true });
    process.stderr.write(`checkpoint-build: ${name}: maskflow run ${path.relative(REPO, workflowFile)} ${extra.join(" ")}\n`);
    const r = await child(["workflow", workflowFile, modelsDir, out, data, ...extra]);
    if (r.exitCode !== 0 || r.jobSeconds === undefined) throw new Error(`checkpoint-build: ${name} failed (${String(r.exitCode)}); see its output above`);
    const at = `${label}: ${name}`;
    const peaks = r.sampledPeakRssBytes as Record<string, number>;
    const unetSeconds = r.jobUnetSeconds as number[];
    report[`${at}: load average at start → end`] = `${String(r.loadAverageAtStart)} → ${String(r.loadAverageAtEnd)}`;
    if (extra.length === 0) {
      const built = await lcmBuildParts(cache);
      const phases = Object.entries(r.buildPhaseStartSeconds as Record<string, number>).map(([p, s]) => `${p} from ${s.toFixed(1)} s`).join(", ");
      report[`${at}: build of the LoRA-merged graphs, first time (s)`] = Number(r.buildSeconds);
      report[`${at}: build: phases (±1 s, from the progress lines)`] = phases || "none shown";
      report[`${at}: build: parts built / taken from the part store`] = built;
    } else {
      report[`${at}: build`] = `none (${path.relative(dir, target)} is an ONNX folder; ${Number(r.buildSeconds).toFixed(2)} s from asking for the model to opening its first session)`;
    }
    report[`${at}: load, four sessions (s)`] = Number(r.loadSeconds);
    report[`${at}: warm-up call (s)`] = Number(r.warmUpSeconds);
    report[`${at}: inpaint after load, end to end: text encoder to saved PNG (s)`] = Number(r.jobSeconds);
    report[`${at}: UNet calls in the inpaint`] = Number(r.jobUnetCalls);
    report[`${at}: seconds per UNet call, median (mean)`] = `${Number(r.jobUnetMedianSeconds).toFixed(2)} (${(Number(r.jobUnetTotalSeconds) / unetSeconds.length).toFixed(2)})`;
    report[`${at}: UNet calls, each (s)`] = unetSeconds.map((s) => s.toFixed(2)).join(", ");
    report[`${at}: UNet / text encoder / VAE encode / VAE decode / the rest (s)`] = [
      Number(r.jobUnetTotalSeconds),
      Number(r.textEncoderSeconds),
      Number(r.vaeEncoderSeconds),
      Number(r.vaeDecoderSeconds),
      Number(r.jobSeconds) - Number(r.jobUnetTotalSeconds) - Number(r.textEncoderSeconds) - Number(r.vaeEncoderSeconds) - Number(r.vaeDecoderSeconds),
    ]
      .map((s) => s.toFixed(1))
      .join(" / ");
    report[`${at}: whole maskflow run to the saved PNG (s)`] = Number(r.wholeRunSeconds);
    report[`${at}: UNet outputs finite`] = String(r.unetOutputsFinite);
    report[`${at}: sampled peak RSS, build / load / inpaint (GB)`] = `${gb(peaks.build).toFixed(2)} / ${gb(peaks.load).toFixed(2)} / ${gb(peaks.job).toFixed(2)}`;
    report[`${at}: peak RSS of the process (GB)`] = gb(r.peakRssBytes);
    jobs.push(Number(r.jobSeconds));
  }
  await rm(out, { recursive: true, force: true });
  await rm(data, { recursive: true, force: true });
  report[`${label}: 4-step inpaint after load, goal < ${LCM_GOAL_SECONDS} s`] = verdict(jobs[0], LCM_GOAL_SECONDS);
  report[`${label}: DDIM inpaint / LCM inpaint, after load`] = `${(jobs[1] / jobs[0]).toFixed(1)}×`;
}

/** Which parts the LoRA-merged build (the one folder in the cache) built, and which it took from the part store. */
async function lcmBuildParts(cache: string): Promise<string> {
  for (const entry of await readdir(cache).catch(() => [] as string[])) {
    const text = await readFile(path.join(cache, entry, BUILD_STAMP), "utf8").catch(() => undefined);
    if (text === undefined) continue;
    const rebuilt = ((JSON.parse(text) as { summary?: { rebuiltParts?: string[] } }).summary?.rebuiltParts ?? []) as string[];
    const all = ["text_encoder", "unet", "vae_encoder", "vae_decoder"];
    const reused = all.filter((part) => !rebuilt.includes(part));
    return `built ${rebuilt.join(", ") || "none"}; from the store ${reused.join(", ") || "none"}`;
  }
  return "no build stamp found";
}
