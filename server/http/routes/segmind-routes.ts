/**
 * `POST /v1/sd1.5-inpainting`, answered as Segmind answers it, so existing Segmind client code works
 * against a Maskflow server by changing only the URL. The request becomes a workflow of ordinary
 * nodes on the same queue and local engine as everything else (it shows in the queue and history).
 */
import type { ServerLog } from "../../logging/server-log.ts";
import { randomUUID } from "node:crypto";
import { readdir, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import express, { Router, type Response } from "express";
import sharp from "sharp";
import { parseSegmindRequest, type SegmindRequest } from "../../engines/segmind/segmind-request.ts";
import { decodeImageInput } from "../../net/decode-image-input.ts";
import { ImageInputError } from "../../net/image-input-error.ts";
import type { JobQueuePort } from "../../queue/job-queue-port.ts";
import { writeFileAtomic } from "../../storage/atomic-write.ts";
import type { DataFolders } from "../../storage/data-folders.ts";
import type { HistoryEntry } from "../../storage/history-store.ts";
import type { ApiKeys } from "../api-keys.ts";
import { HttpError } from "../http-error.ts";
import { parseJsonBytes } from "../json-body.ts";
import { callerOf, requireKey } from "../key-gate.ts";
import { PreparationSlots } from "./preparation-slots.ts";

export interface SegmindRouteOptions {
  readonly queue: JobQueuePort;
  readonly folders: DataFolders;
  /** MASKFLOW_API_KEYS: when set, a valid x-api-key (or editor session) is required, before the body is read. */
  readonly keys: ApiKeys;
  /** MASKFLOW_ALLOW_PRIVATE_URLS: let image URLs point at private addresses. */
  readonly allowPrivateUrls: boolean;
  /** Exact addresses image URLs may use even when private ones are refused (tests). */
  readonly allowedUrlAddresses?: readonly string[];
  /** Requests being read, fetched or decoded at once, before they reach the queue; one more is a 429 (default 4). */
  readonly maxPreparing?: number;
  readonly log: ServerLog;
}

const SAVE_NODE = "6";
/** Each request in preparation may hold a 60 MB body and two 20 MB pictures: four bound that to a few hundred MB. */
export const DEFAULT_MAX_PREPARING = 4;
/** Where a request's pictures wait for its job, under input/; removed when the job ends. */
const INPUT_SUBFOLDER = "segmind";

/** A leftover younger than this may belong to a request still being prepared (on another server of a Redis queue). */
const ORPHAN_MIN_AGE_MS = 60_000;

export function segmindRoutes(options: SegmindRouteOptions): Router {
  const router = Router();
  // Pictures whose request never reached its end (the server was killed) would otherwise stay for good.
  void removeOrphanedInputs(options);
  const preparing = new PreparationSlots(options.maxPreparing ?? DEFAULT_MAX_PREPARING, "Segmind requests");
  router.post(
    "/v1/sd1.5-inpainting",
    requireKey(options.keys),
    // The place is taken before the body is read: the body is the largest thing a request holds.
    (_req, res, next) => {
      preparing.take(res);
      res.once("close", () => preparing.release(res));
      next();
    },
    // Raw bytes, not express.json: seeds up to 2^64 − 1 must not pass through a JS number, and a body of
    // up to 60 MB is parsed on a worker thread.
    express.raw({ type: () => true, limit: "60mb" }),
    async (req, res) => {
      const bytes: unknown = req.body;
      const body = await parseJsonBytes(bytes instanceof Uint8Array ? bytes : new Uint8Array(0), { keepLongSeeds: true });
      const parsed = parseSegmindRequest(body);
      if (!parsed.ok) {
        throw new HttpError(400, "invalid_request", parsed.problems.map((p) => p.message).join("; "), { problems: parsed.problems });
      }
      const request = parsed.request;
      const id = randomUUID();
      // Aborted when the caller hangs up (its downloads stop there) or when one picture fails (the other is not needed).
      const stop = new AbortController();
      let abandoned = false;
      let queued: string | undefined;
      res.on("close", () => {
        if (res.writableFinished) return;
        abandoned = true;
        stop.abort(new Error("the caller hung up"));
        // Do not spend the engine on an answer nobody reads.
        if (queued) void abandonJob(options.queue, queued, options.log);
      });
      // This request's pictures: no one else refers to them, so they go when its job ends, whatever the ending.
      const written: string[] = [];
      let entry: HistoryEntry | undefined;
      try {
        const prepared = await Promise.allSettled(
          (["image", "mask"] as const).map((field) =>
            prepareInput(request[field], field, id, written, stop.signal, options).catch((error: unknown) => {
              stop.abort(error);
              throw error;
            }),
          ),
        );
        if (abandoned) return;
        const failure = prepared.find((outcome) => outcome.status === "rejected");
        if (failure) throw failure.reason;
        const [image, mask] = prepared.map((outcome) => (outcome as PromiseFulfilledResult<string>).value);
        // Its own client id, which no one else knows, so no WebSocket can watch another caller's job; the
        // per-client limit counts the caller (its key or address).
        const { id: jobId } = await options.queue.enqueue(segmindWorkflow(request, image, mask), {
          clientId: `segmind-${randomUUID()}`,
          limitKey: callerOf(res),
          id,
        });
        queued = jobId;
        preparing.release(res);
        if (abandoned) void abandonJob(options.queue, jobId, options.log);
        entry = await jobEnd(jobId, options.queue, res, () => abandoned);
      } finally {
        preparing.release(res);
        // Before the answer, so a caller that has its answer finds nothing of its request left.
        await removeInputs(written, options);
      }
      if (entry && !abandoned) await answer(entry, request, res, options);
    },
  );
  return router;
}

/** Fetches or decodes one picture and saves it under input/segmind/, recording its name before writing. */
async function prepareInput(
  value: string,
  field: "image" | "mask",
  id: string,
  written: string[],
  signal: AbortSignal,
  options: SegmindRouteOptions,
): Promise<string> {
  try {
    const decoded = await decodeImageInput(value, field, {
      allowPrivateAddresses: options.allowPrivateUrls,
      allowedAddresses: options.allowedUrlAddresses,
      signal,
    });
    signal.throwIfAborted();
    const name = `${INPUT_SUBFOLDER}/${id}-${field}.${decoded.contentType.split("/")[1] ?? "png"}`;
    written.push(name);
    await writeFileAtomic(options.folders.resolve("input", name), decoded.bytes);
    return name;
  } catch (error) {
    if (error instanceof ImageInputError) throw new HttpError(400, "invalid_image", error.message, { field });
    throw error;
  }
}

/** The job's history entry once it has ended; undefined when it was cancelled and the caller has gone. */
async function jobEnd(jobId: string, queue: JobQueuePort, res: Response, callerGone: () => boolean): Promise<HistoryEntry | undefined> {
  try {
    return await queue.waitFor(jobId);
  } catch (error) {
    // Cancelled while pending: either the caller left (no one to answer) or someone cleared the queue.
    if (callerGone() || res.writableEnded) return undefined;
    throw new HttpError(503, "job_cancelled", (error as Error).message);
  }
}

/** Answers as Segmind does: the JPEG, or JSON with base64 when asked. */
async function answer(entry: HistoryEntry, request: SegmindRequest, res: Response, options: SegmindRouteOptions): Promise<void> {
  const jobId = entry.id;
  if (entry.status !== "success") {
    const message = entry.error?.message ?? entry.status;
    if (/no model folder|model_index\.json|missing or empty/.test(message)) {
      throw new HttpError(404, "model_not_found", `the local inpainting model is not installed: ${message}`);
    }
    throw new HttpError(500, "inpaint_failed", `inpainting failed: ${message}`);
  }
  const refs = entry.outputs[SAVE_NODE]?.images ?? [];
  const jpegs = await Promise.all(
    refs.map(async (ref) => sharp(await readFile(path.join(options.folders.folder(ref.type), ref.subfolder, ref.filename))).jpeg({ quality: 92 }).toBuffer()),
  );
  if (!jpegs.length) throw new HttpError(500, "inpaint_failed", "the job finished without an image");
  res.set("x-maskflow-job-id", jobId).set("x-seed", request.seed.toString());
  if (request.base64) {
    res.json({ image: jpegs[0].toString("base64"), images: jpegs.map((j) => j.toString("base64")), seed: request.seed.toString(), id: jobId });
  } else {
    res.type("image/jpeg").send(jpegs[0]);
  }
}

/** At start: removes the pictures of requests whose job is neither running nor waiting, once they are a minute old. */
async function removeOrphanedInputs(options: SegmindRouteOptions): Promise<void> {
  const folder = path.join(options.folders.input, INPUT_SUBFOLDER);
  try {
    const names = await readdir(folder).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return [] as string[];
      throw error;
    });
    if (!names.length) return;
    const { running, pending } = await options.queue.snapshot();
    const live = new Set([...running, ...pending].map((job) => job.id));
    const orphaned: string[] = [];
    for (const name of names) {
      // Named `<job id>-image.png` / `<job id>-mask.png`; the job id is a UUID.
      if (live.has(name.slice(0, 36))) continue;
      const stats = await stat(path.join(folder, name)).catch(() => undefined);
      if (stats?.isFile() && Date.now() - stats.mtimeMs >= ORPHAN_MIN_AGE_MS) orphaned.push(`${INPUT_SUBFOLDER}/${name}`);
    }
    await removeInputs(orphaned, options);
  } catch (error) {
    options.log.warn(`could not look for leftover Segmind inputs in ${INPUT_SUBFOLDER}/: ${(error as Error).message}`);
  }
}

/** A failed removal is logged, not answered: the caller's answer does not depend on it. */
async function removeInputs(names: readonly string[], options: SegmindRouteOptions): Promise<void> {
  const outcomes = await Promise.allSettled(names.map((name) => rm(options.folders.resolve("input", name), { force: true })));
  for (const outcome of outcomes) {
    if (outcome.status === "rejected") options.log.warn(`could not remove a Segmind request's input: ${(outcome.reason as Error)?.message ?? outcome.reason}`);
  }
}

/** Cancels the job if it still waits, stops it if it runs; on the Redis queue either may fail (503), which must not crash the server. */
async function abandonJob(queue: JobQueuePort, jobId: string, log: ServerLog): Promise<void> {
  const outcomes = await Promise.allSettled([queue.cancel([jobId]), queue.interrupt(jobId)]);
  for (const outcome of outcomes) {
    if (outcome.status === "rejected") {
      log.warn(`could not stop abandoned Segmind job ${jobId}: ${(outcome.reason as Error)?.message ?? outcome.reason}`);
    }
  }
}

/** The request as a workflow of shipped nodes, with the images saved in input/segmind/ for the length of the job. */
function segmindWorkflow(request: SegmindRequest, image: string, mask: string) {
  return {
    format: "maskflow-workflow",
    version: 1,
    name: "segmind-api",
    nodes: [
      { id: "1", type: "LoadImage", inputs: { image } },
      { id: "2", type: "LoadMask", inputs: { image: mask, channel: "luminance" } },
      { id: "3", type: "Prompt", inputs: { positive: request.prompt, negative: request.negative_prompt ?? "" } },
      {
        id: "4",
        type: "Scheduler",
        inputs: {
          scheduler: request.scheduler,
          steps: request.num_inference_steps,
          guidance: request.guidance_scale,
          strength: request.strength,
          seed: request.seed.toString(),
        },
      },
      {
        id: "5",
        type: "Inpaint",
        inputs: {
          image: ["1", "image"],
          mask: ["2", "mask"],
          prompt: ["3", "prompt"],
          scheduler: ["4", "scheduler"],
          backend: "local",
          samples: request.samples,
          width: request.img_width,
          height: request.img_height,
        },
      },
      { id: SAVE_NODE, type: "SaveImage", inputs: { images: ["5", "images"], filename_prefix: "segmind" } },
    ],
  };
}
