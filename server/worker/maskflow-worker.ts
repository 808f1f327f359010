/**
 * One `maskflow worker`: takes jobs from the Redis queue (BullMQ), runs each with the same Executor,
 * registry and engines as the embedded server, and reports back:
 *
 * - execution events (progress, executed, …) and step previews, framed for the WebSocket already, on
 *   the pub/sub events channel, in the order they happened;
 * - the result (the executor's outputs, times, status) as the BullMQ job's return value, which the
 *   server turns into the history entry;
 * - output files straight into the shared data folder (`--data`, the server's own folder or an NFS
 *   mount of it), named by job id so a job run again after a crash overwrites its first files.
 *
 * A node error or an invalid workflow is a result, not a failure: BullMQ only runs a job again when its
 * worker died or stalled (lost its lock), up to maxStalledCount times.
 */
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type Job, UnrecoverableError, Worker } from "bullmq";
import type { Redis } from "ioredis";
import { createBuiltinRegistry } from "../../nodes/index.ts";
import type { NodeEngines } from "../../nodes/node-definition.ts";
import type { NodeRegistry } from "../../nodes/registry.ts";
import { Executor } from "../executor/executor.ts";
import { JobInterruptedError } from "../executor/job-interrupted.ts";
import { encodePreviewFrame } from "../http/preview-frame.ts";
import type { JobRef } from "../queue/job-queue-port.ts";
import { connectRedis, oncePerOutage } from "../queue/redis-connection.ts";
import {
  channelNames,
  DEFAULT_QUEUE_NAME,
  encodeEventMessage,
  KEY_PREFIX,
  type MaskflowJobData,
  type MaskflowJobReturn,
  parseControlMessage,
} from "../queue/redis-events.ts";
import { JobOutputFolders } from "./job-output-folders.ts";

const SHIPPED_WORKFLOWS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../workflows");

export interface MaskflowWorkerOptions {
  readonly redisUrl: string;
  /** The data folder shared with the server: input/ is read, output/ and temp/ are written. */
  readonly dataDir: string;
  /** Jobs run at once in this process (default 1: a diffusion job wants the whole machine). */
  readonly concurrency?: number;
  /** Shown in logs and stored on each job it runs (default host:pid). */
  readonly name?: string;
  readonly queueName?: string;
  /**
   * How long a job's lock lasts without renewal (renewed every half of it). A worker that dies is
   * noticed within about lockDuration + 2 × stalledInterval, and its job goes back to wait.
   */
  readonly lockDurationMs?: number;
  readonly stalledIntervalMs?: number;
  /** Times a job may be put back after its worker died before it fails for good (default 2). */
  readonly maxStalledCount?: number;
  readonly registry?: NodeRegistry;
  readonly engines?: NodeEngines;
  readonly cacheBytes?: number;
  readonly log?: (line: string) => void;
}

export interface RunningWorker {
  readonly name: string;
  readonly folders: JobOutputFolders;
  /** Ids of the jobs running in this process now. */
  running(): string[];
  /** Takes no more jobs, lets the running ones finish, disconnects. */
  close(): Promise<void>;
}

export async function startWorker(options: MaskflowWorkerOptions): Promise<RunningWorker> {
  const name = options.name ?? `${os.hostname()}:${process.pid}`;
  const log = options.log ?? ((line: string) => console.log(`maskflow worker ${name}: ${line}`));
  const queueName = options.queueName ?? DEFAULT_QUEUE_NAME;
  const channels = channelNames(queueName);
  const folders = await new JobOutputFolders(options.dataDir, { extraInputRoots: [SHIPPED_WORKFLOWS] }).create();
  const executor = new Executor({
    registry: options.registry ?? createBuiltinRegistry(),
    storage: folders,
    engines: options.engines,
    cacheBytes: options.cacheBytes,
    logger: { info: (m) => log(m), warn: (m) => log(m) },
  });
  const aborts = new Map<string, AbortController>();

  const publisher = connectRedis(options.redisUrl, `maskflow-worker-${name}`);
  const subscriber = connectRedis(options.redisUrl, `maskflow-worker-${name}-control`);
  const workerConnection = connectRedis(options.redisUrl, `maskflow-worker-${name}-jobs`);
  subscriber.on("message", (_channel: string, text: string) => {
    const message = parseControlMessage(text);
    const abort = message && aborts.get(message.jobId);
    if (abort && !abort.signal.aborted) {
      log(`job ${message.jobId}: interrupt requested`);
      abort.abort(new JobInterruptedError());
    }
  });
  await subscriber.subscribe(channels.control);

  const processor = async (job: Job<MaskflowJobData, MaskflowJobReturn>): Promise<MaskflowJobReturn> => {
    const id = job.id;
    const data = job.data as Partial<MaskflowJobData> | undefined;
    if (!id || !data || typeof data !== "object" || data.workflow === undefined) {
      throw new UnrecoverableError("the job carries no workflow (was it queued by a Maskflow server?)");
    }
    const ref: JobRef = { id, clientId: data.clientId };
    const abort = new AbortController();
    aborts.set(id, abort);
    try {
      if (await publisher.exists(channels.interruptedKey(id))) abort.abort(new JobInterruptedError());
      log(`job ${id} started (attempt ${job.attemptsStarted}${job.stalledCounter ? `, after ${job.stalledCounter} stall(s)` : ""})`);
      const events = new EventSender(publisher, channels.events, log);
      const started = Date.now();
      const result = await folders.runAs(id, () =>
        executor.run(data.workflow, {
          jobId: id,
          signal: abort.signal,
          onEvent: (event) => {
            if (event.type === "preview") {
              events.send(ref, encodePreviewFrame(event.node, event.image).then((frame) => ({ type: "preview_frame", jobId: id, node: event.node, frame })));
            } else {
              events.send(ref, Promise.resolve(event));
            }
          },
        }),
      );
      const finished = Date.now();
      // Everything the client should see before the server records the result.
      await events.flushed();
      log(`job ${id} finished: ${result.status}${result.error ? ` (${result.error.message})` : ""}`);
      return {
        result,
        startedAt: new Date(started).toISOString(),
        finishedAt: new Date(finished).toISOString(),
        durationMs: finished - started,
        worker: name,
      };
    } finally {
      aborts.delete(id);
    }
  };

  const worker = new Worker<MaskflowJobData, MaskflowJobReturn>(queueName, processor, {
    connection: workerConnection,
    prefix: KEY_PREFIX,
    name,
    concurrency: options.concurrency ?? 1,
    lockDuration: options.lockDurationMs ?? 30_000,
    stalledInterval: options.stalledIntervalMs ?? 30_000,
    maxStalledCount: options.maxStalledCount ?? 2,
  });
  worker.on("error", oncePerOutage(publisher, (message) => log(`redis: ${message}`)));
  worker.on("failed", (job, error) => log(`job ${job?.id ?? "?"} failed: ${error.message}`));
  await worker.waitUntilReady();
  log(`ready: queue "${queueName}", concurrency ${options.concurrency ?? 1}, data folder ${folders.root}`);

  return {
    name,
    folders,
    running: () => [...aborts.keys()],
    async close() {
      await worker.close();
      for (const connection of [subscriber, publisher, workerConnection] as Redis[]) connection.disconnect();
    },
  };
}

type SentEvent = Parameters<typeof encodeEventMessage>[1];

/** Publishes one job's events in order, even while a preview is still being JPEG-encoded. */
class EventSender {
  #chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly publisher: Redis,
    private readonly channel: string,
    private readonly log: (line: string) => void,
  ) {}

  send(job: JobRef, event: Promise<SentEvent>): void {
    this.#chain = this.#chain
      .then(() => event)
      .then((ready) => this.publisher.publish(this.channel, encodeEventMessage(job, ready)))
      .then(() => {})
      .catch((error: unknown) => this.log(`could not publish an event of job ${job.id}: ${(error as Error).message}`));
  }

  flushed(): Promise<void> {
    return this.#chain;
  }
}
