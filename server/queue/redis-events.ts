/**
 * What the server and its `maskflow worker`s say to each other through Redis, besides BullMQ's own keys:
 *
 * - Job data (the validated workflow and who queued it) and the job's return value (the executor's
 *   result with its times), both JSON in the BullMQ job.
 * - Execution events, worker → server, on the pub/sub channel `<prefix>:<queue>:events`. One message:
 *     bytes 0–3  uint32 BE  n = byte length of the JSON header
 *     bytes 4…   n bytes    {"job": {id, clientId}, "event": {...}} (UTF-8)
 *     then                  for a preview only: the WebSocket preview frame, ready to forward
 *   Pub/sub is fire-and-forget: a server that is reconnecting misses live progress, never a result,
 *   because results travel in the BullMQ job and are read from Redis.
 * - Interrupts, server → workers, on `<prefix>:<queue>:control` as JSON {"type": "interrupt", "jobId"},
 *   plus a key `<prefix>:<queue>:interrupted:<jobId>` (one hour) that a worker checks as it starts
 *   a job, for an interrupt that raced the start.
 */
import type { ExecutionEvent } from "../executor/execution-event.ts";
import type { JobResult } from "../executor/executor.ts";
import type { WorkflowDocument } from "../workflow/workflow-document.ts";
import type { JobRef, QueueEvent } from "./job-queue-port.ts";
import type { BatchRef } from "../storage/history-record.ts";

export const DEFAULT_QUEUE_NAME = "maskflow";
export const KEY_PREFIX = "maskflow";
export const INTERRUPT_TTL_SECONDS = 3600;

export interface MaskflowJobData {
  readonly workflow: WorkflowDocument;
  readonly clientId?: string;
  /** Who the job counts against for the per-client limit (EnqueueOptions.limitKey). */
  readonly limitKey?: string;
  /** Ours: higher first, −100…100 from the API. */
  readonly priority: number;
  readonly createdAt: string;
  /** Its place in a batch queued at once. */
  readonly batch?: BatchRef;
}

export interface MaskflowJobReturn {
  readonly result: JobResult;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
  /** The worker that ran it (its --name, host:pid by default). */
  readonly worker: string;
}

/** BullMQ runs the lowest priority number first (1 is the highest; 0 means none). */
export const BULLMQ_PRIORITY_MAX = 2 ** 21;
const PRIORITY_OFFSET = 101;

/** Ours → BullMQ's: 100 → 1, 0 → 101, −100 → 201; every job gets one, so all of them share one FIFO-per-priority order. */
export function toBullPriority(priority: number): number {
  return Math.min(BULLMQ_PRIORITY_MAX, Math.max(1, PRIORITY_OFFSET - Math.round(priority)));
}

export function fromBullPriority(bullPriority: number): number {
  return PRIORITY_OFFSET - bullPriority;
}

export function channelNames(queueName: string) {
  return {
    events: `${KEY_PREFIX}:${queueName}:events`,
    control: `${KEY_PREFIX}:${queueName}:control`,
    interruptedKey: (jobId: string) => `${KEY_PREFIX}:${queueName}:interrupted:${jobId}`,
    /** Held while one server counts the waiting jobs and adds one, so the limits hold for a burst. */
    enqueueLock: `${KEY_PREFIX}:${queueName}:enqueue-lock`,
  };
}

/** A preview as it crosses Redis: framed already, by preview-frame.ts in the worker. */
type WireEvent = Exclude<ExecutionEvent, { type: "preview" }> | { readonly type: "preview_frame"; readonly jobId: string; readonly node: string };

export function encodeEventMessage(job: JobRef, event: Exclude<QueueEvent, { type: "status" } | { type: "preview" }>): Buffer {
  let wire: WireEvent;
  let tail: Uint8Array = new Uint8Array(0);
  if (event.type === "preview_frame") {
    wire = { type: "preview_frame", jobId: event.jobId, node: event.node };
    tail = event.frame;
  } else {
    wire = event;
  }
  const header = Buffer.from(JSON.stringify({ job: { id: job.id, clientId: job.clientId }, event: wire }), "utf8");
  const length = Buffer.alloc(4);
  length.writeUInt32BE(header.length, 0);
  return Buffer.concat([length, header, tail]);
}

export function decodeEventMessage(message: Buffer): { job: JobRef; event: QueueEvent } {
  if (message.length < 4) throw new Error(`event message of ${message.length} bytes is too short`);
  const length = message.readUInt32BE(0);
  if (4 + length > message.length) throw new Error(`event message header says ${length} bytes but ${message.length - 4} follow`);
  const parsed = JSON.parse(message.subarray(4, 4 + length).toString("utf8")) as { job: JobRef; event: WireEvent };
  if (parsed.event.type === "preview_frame") {
    const frame = message.subarray(4 + length);
    return { job: parsed.job, event: { type: "preview_frame", jobId: parsed.event.jobId, node: parsed.event.node, frame } };
  }
  return { job: parsed.job, event: parsed.event };
}

export interface InterruptMessage {
  readonly type: "interrupt";
  readonly jobId: string;
}

export function parseControlMessage(text: string): InterruptMessage | undefined {
  try {
    const parsed = JSON.parse(text) as Partial<InterruptMessage>;
    return parsed.type === "interrupt" && typeof parsed.jobId === "string" ? { type: "interrupt", jobId: parsed.jobId } : undefined;
  } catch {
    return undefined;
  }
}
