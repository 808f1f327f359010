/**
 * The main thread's door to checkpoint builds: runs a build job on its own worker thread and answers with
 * the model folder to open. The same checkpoint asked for twice at once is built once.
 */
import { access, stat } from "node:fs/promises";
import path from "node:path";
import { Worker } from "node:worker_threads";
import { CheckpointError } from "./checkpoint-tensor.ts";
import type { BuildJobProgress, BuildJobRequest, BuildJobResult } from "./build-job.ts";

export type { BuildJobProgress, BuildJobResult } from "./build-job.ts";

/** The file names a checkpoint comes under (torch writes .ckpt, .pt, .pth and diffusers' .bin alike). */
export const CHECKPOINT_FILE_PATTERN = /\.(safetensors|ckpt|pt|pth|bin)$/i;

/** Where content-keyed builds live inside a models folder. */
export const BUILT_MODELS_FOLDER = ".built";

type WorkerReply =
  | { type: "progress"; progress: BuildJobProgress }
  | { type: "done"; result: BuildJobResult }
  | { type: "error"; name?: string; message: string };

const running = new Map<string, { promise: Promise<BuildJobResult>; listeners: Set<(progress: BuildJobProgress) => void> }>();

export function buildCheckpoint(
  request: BuildJobRequest,
  options: { onProgress?: (progress: BuildJobProgress) => void; signal?: AbortSignal } = {},
): Promise<BuildJobResult> {
  // A build cancelled before it started: no worker to start, nothing to clean.
  if (options.signal?.aborted) return Promise.reject(options.signal.reason);
  // The whole request: the same checkpoint with other LoRAs, strengths or a merge is another build.
  const id = JSON.stringify({ ...request, source: path.resolve(request.source), cacheRoot: path.resolve(request.cacheRoot), target: request.target && path.resolve(request.target) });
  let entry = running.get(id);
  if (!entry) {
    const listeners = new Set<(progress: BuildJobProgress) => void>();
    const promise = runOnWorker(request, (progress) => {
      for (const listener of listeners) listener(progress);
    }, options.signal);
    entry = { promise, listeners };
    running.set(id, entry);
    const forget = () => running.delete(id);
    promise.then(forget, forget);
  }
  if (options.onProgress) entry.listeners.add(options.onProgress);
  return entry.promise;
}

function runOnWorker(request: BuildJobRequest, onProgress: (progress: BuildJobProgress) => void, signal?: AbortSignal): Promise<BuildJobResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./build-worker.mjs", import.meta.url), { workerData: request });
    let settled = false;
    const onAbort = () => worker.postMessage("abort");
    signal?.addEventListener("abort", onAbort, { once: true });
    const settle = (action: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      // The worker listens for "abort" until it is told to go: end it, or it keeps the process alive.
      void worker.terminate();
      action();
    };
    worker.on("message", (reply: WorkerReply) => {
      if (reply.type === "progress") onProgress(reply.progress);
      else if (reply.type === "done") settle(() => resolve(reply.result));
      else settle(() => reject(reply.name === "CheckpointError" ? Object.assign(new Error(reply.message), { name: "CheckpointError" }) : new Error(reply.message)));
    });
    worker.once("error", (error) => settle(() => reject(error)));
    worker.once("exit", (code) => settle(() => reject(new CheckpointError(request.source, `the build stopped unexpectedly (exit code ${code})`))));
  });
}

/** One line for a progress view: "reading checkpoint 40 %", "building unet 12 %". */
export function describeBuildProgress(progress: BuildJobProgress): string {
  const percent = progress.total > 0 ? Math.floor((100 * progress.done) / progress.total) : 0;
  return progress.phase === "reading" ? `reading checkpoint ${percent} %` : `building ${progress.part} ${percent} %`;
}

/** Whether a load progress label is a build's (describeBuildProgress), which the editor shows as it is. */
export function isBuildPhase(label: string): boolean {
  return label.startsWith("reading checkpoint") || label.startsWith("building ");
}

/** A checkpoint, rather than an ONNX model folder: a weights file, or a diffusers folder without model.onnx files. */
export async function isCheckpointSource(source: string): Promise<boolean> {
  try {
    const info = await stat(source);
    if (info.isFile()) return CHECKPOINT_FILE_PATTERN.test(source);
    if (!info.isDirectory()) return false;
    try {
      await access(path.join(source, "unet", "model.onnx"));
      return false;
    } catch {
      await access(path.join(source, "model_index.json"));
      await access(path.join(source, "unet"));
      return true;
    }
  } catch {
    return false;
  }
}
