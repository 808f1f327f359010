/**
 * fp16 exports on CPU: which file a session opens. onnxruntime's CPU provider computes nearly every op of an
 * fp16 graph in fp32 behind casts (20–50 % slower a step than the fp32 export), so on `--device cpu` Maskflow
 * converts each fp16 session file to fp32 once (fp16-to-fp32.ts, on a worker thread) and keeps the result in
 * `<model>/.maskflow-fp32/<part>/`, keyed by the source files' sizes and modification times; later loads open
 * the cached file like any fp32 export. CUDA computes in fp16 and keeps the export's own file.
 *
 * MASKFLOW_FP16_ON_CPU=keep (or the engine's fp16OnCpu option) opens the fp16 file as it is, for disks without
 * room for the copy (about the fp32 size once more); so does a disk found too small, with a log line saying so.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Worker } from "node:worker_threads";
import { defaultStatfs, freeBytesAt, type StatFs } from "../../models/disk-space.ts";
import { formatBytes } from "../../models/format-bytes.ts";
import { externalDataOf } from "../../models/onnx-external-data.ts";
import type { Fp16ToFp32Result } from "./fp16-to-fp32.ts";
import { isFloat16Model } from "./fp16-to-fp32.ts";
import type { DeviceName } from "./onnx-session.ts";

/** Inside the model folder, hidden: `models list` counts its bytes (it is disk used), `verify` checks only the export's files. */
export const FP32_CACHE_DIR = ".maskflow-fp32";
const STAMP_FILE = "source.json";
/** Bumped when the converter's output changes, so caches written by an older one are converted again. */
const CONVERTER_VERSION = 1;
/** Room left free beyond the copy itself. */
const DISK_MARGIN_BYTES = 256 * 1024 * 1024;

export const FP16_ON_CPU_VALUES = ["convert", "keep"] as const;
export type Fp16OnCpu = (typeof FP16_ON_CPU_VALUES)[number];
export const FP16_ON_CPU_VARIABLE = "MASKFLOW_FP16_ON_CPU";

/** MASKFLOW_FP16_ON_CPU: unset or empty means "convert". */
export function parseFp16OnCpu(value: string | undefined): Fp16OnCpu {
  if (value === undefined || value === "") return "convert";
  if ((FP16_ON_CPU_VALUES as readonly string[]).includes(value)) return value as Fp16OnCpu;
  throw new Error(`${FP16_ON_CPU_VARIABLE} must be ${FP16_ON_CPU_VALUES.map((v) => `"${v}"`).join(" or ")}, got "${value}"`);
}

/** Whether an fp16 session file is opened as a converted fp32 copy: only on CPU, unless kept by choice. */
export function convertsFp16(device: DeviceName, setting: Fp16OnCpu): boolean {
  return device === "cpu" && setting === "convert";
}

const PHASE_PREFIX = "converting ";
const PHASE_SUFFIX = " to fp32 (once)";

/** The load progress's label while a part converts: "converting unet to fp32 (once)". */
export function conversionPhase(part: string): string {
  return `${PHASE_PREFIX}${part}${PHASE_SUFFIX}`;
}

export function isConversionPhase(label: string): boolean {
  return label.startsWith(PHASE_PREFIX) && label.endsWith(PHASE_SUFFIX);
}

export interface SessionFile {
  /** The file to open. */
  readonly file: string;
  /** Whether that file is fp16 (then, on CPU, it loads with the settings for fp16: sd-model.ts). */
  readonly float16: boolean;
  /** Whether the file is a converted copy of an fp16 one. */
  readonly convertedFromFloat16: boolean;
}

export interface SessionFileOptions {
  readonly device: DeviceName;
  readonly fp16OnCpu: Fp16OnCpu;
  /** Called before a conversion starts (not when the cache is used). */
  readonly onConverting?: () => void;
  /** Where a fallback to the fp16 file is explained. */
  readonly warn: (message: string) => void;
  /** Tests play a nearly full disk with their own. */
  readonly statfs?: StatFs;
}

/**
 * The file to open for `<modelDir>/<part>/model.onnx`: the file itself, or for an fp16 one on CPU its fp32
 * copy, converted now when the cache lacks it or was made from other source files.
 */
export async function sessionFileFor(modelDir: string, part: string, options: SessionFileOptions): Promise<SessionFile> {
  const source = path.join(modelDir, part, "model.onnx");
  const asIs = (float16: boolean): SessionFile => ({ file: source, float16, convertedFromFloat16: false });
  let float16: boolean;
  try {
    float16 = await isFloat16Model(source);
  } catch {
    // Not readable as ONNX: onnxruntime's opening names the problem.
    return asIs(false);
  }
  if (!float16 || !convertsFp16(options.device, options.fp16OnCpu)) return asIs(float16);

  const cacheDir = path.join(modelDir, FP32_CACHE_DIR, part);
  const converted: SessionFile = { file: path.join(cacheDir, "model.onnx"), float16: false, convertedFromFloat16: true };
  const stamp = await stampOf(source);
  if ((await readStamp(cacheDir)) === stamp.text) return converted;

  const needed = 2 * stamp.bytes + DISK_MARGIN_BYTES;
  const free = await freeBytesAt(modelDir, options.statfs ?? defaultStatfs);
  if (free < needed) {
    options.warn(
      `${source}: not converted to fp32 for the CPU (it needs about ${formatBytes(needed)} free, ${formatBytes(free)} is free at ${modelDir}); ` +
        `loading the fp16 file as it is, which runs 20–50 % slower a step. Free some space, or set ${FP16_ON_CPU_VARIABLE}=keep to silence this.`,
    );
    return asIs(true);
  }

  options.onConverting?.();
  const temporary = path.join(modelDir, FP32_CACHE_DIR, `${part}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    await mkdir(temporary, { recursive: true });
    await convertOnWorker(source, path.join(temporary, "model.onnx"));
    await writeFile(path.join(temporary, STAMP_FILE), stamp.text);
    // A crash before the rename leaves only the temporary folder (removed by the next conversion), never a half cache.
    if ((await readStamp(cacheDir)) !== stamp.text) await rm(cacheDir, { recursive: true, force: true });
    await rename(temporary, cacheDir).catch(async (error: NodeJS.ErrnoException) => {
      // Another process (a parallel load of the same folder) renamed its copy first: use that one if it is current.
      if ((error.code === "ENOTEMPTY" || error.code === "EEXIST") && (await readStamp(cacheDir)) === stamp.text) return;
      throw error;
    });
    return converted;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    options.warn(
      `${source}: converting it to fp32 for the CPU failed (${reason}); loading the fp16 file as it is, which runs 20–50 % slower a step. ` +
        `Set ${FP16_ON_CPU_VARIABLE}=keep to skip the conversion.`,
    );
    return asIs(true);
  } finally {
    await rm(temporary, { recursive: true, force: true });
    await removeLeftovers(path.join(modelDir, FP32_CACHE_DIR), part);
  }
}

/** Temporary folders of conversions that crashed (their process is gone) are removed; live ones are left alone. */
async function removeLeftovers(cacheRoot: string, part: string): Promise<void> {
  const names = await readdir(cacheRoot).catch(() => [] as string[]);
  for (const name of names) {
    const match = new RegExp(`^${part}\\.tmp-(\\d+)-[0-9a-f]+$`).exec(name);
    if (!match || processAlive(Number(match[1]))) continue;
    await rm(path.join(cacheRoot, name), { recursive: true, force: true });
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** What the cache was made from: the converter's version and each source file's size and modification time. */
async function stampOf(source: string): Promise<{ text: string; bytes: number }> {
  const files = [source, ...(await externalDataOf(source)).map((data) => path.join(path.dirname(source), data.location))];
  const entries: { file: string; size: number; mtimeMs: number }[] = [];
  let bytes = 0;
  for (const file of files) {
    const info = await stat(file);
    entries.push({ file: path.basename(file), size: info.size, mtimeMs: info.mtimeMs });
    bytes += info.size;
  }
  return { text: JSON.stringify({ converter: CONVERTER_VERSION, files: entries }, null, 2) + "\n", bytes };
}

async function readStamp(cacheDir: string): Promise<string | undefined> {
  try {
    return await readFile(path.join(cacheDir, STAMP_FILE), "utf8");
  } catch {
    return undefined;
  }
}

/** The conversion is seconds to minutes of CPU and disk work: a worker thread of its own, off the event loop. */
function convertOnWorker(source: string, target: string): Promise<Fp16ToFp32Result> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./fp16-to-fp32-worker.mjs", import.meta.url), { workerData: { source, target } });
    let settled = false;
    worker.once("message", (reply: { ok: true; result: Fp16ToFp32Result } | { ok: false; message: string }) => {
      settled = true;
      if (reply.ok) resolve(reply.result);
      else reject(new Error(reply.message));
    });
    worker.once("error", (error) => {
      settled = true;
      reject(error);
    });
    worker.once("exit", (code) => {
      if (!settled) reject(new Error(`the conversion thread exited with code ${code}`));
    });
  });
}
