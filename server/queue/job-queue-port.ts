/**
 * What the HTTP routes and the WebSocket hub need from a job queue. Two implementations: the embedded
 * `JobQueue` (one process, in memory, the default) and `BullMqJobQueue` (Redis, any number of
 * `maskflow worker` processes). Methods that must reach Redis return promises; `status()` stays
 * synchronous because a WebSocket client is sent it the moment it connects (the Redis queue keeps a
 * copy refreshed on every queue event).
 */
import type { ExecutionEvent } from "../executor/execution-event.ts";
import type { BatchRef } from "../storage/history-record.ts";
import type { HistoryEntry } from "../storage/history-store.ts";
import type { WorkflowDocument } from "../workflow/workflow-document.ts";

export interface QueuedJob {
  readonly id: string;
  readonly workflow: WorkflowDocument;
  readonly clientId?: string;
  /** Who the job counts against for maxPendingPerClient (see EnqueueOptions.limitKey). */
  readonly limitKey?: string;
  readonly priority: number;
  readonly createdAt: string;
  readonly batch?: BatchRef;
}

/** Enough of a job to route its events: the hub sends them to the client that queued it. */
export interface JobRef {
  readonly id: string;
  readonly clientId?: string;
}

export interface QueueSnapshot {
  readonly running: readonly QueuedJob[];
  readonly pending: readonly QueuedJob[];
}

export interface QueueStatus {
  readonly queueRemaining: number;
  /** A running job's id (with several workers, one of them), or null when nothing runs. */
  readonly running: string | null;
}

/**
 * A step preview already framed for the WebSocket (see preview-frame.ts). A worker in another process
 * encodes the frame where the image is, so the server forwards bytes instead of decoding and re-encoding.
 */
export interface PreviewFrameEvent {
  readonly type: "preview_frame";
  readonly jobId: string;
  readonly node: string;
  readonly frame: Uint8Array;
}

export type QueueEvent = ExecutionEvent | PreviewFrameEvent | { readonly type: "status"; readonly status: QueueStatus };

export type QueueListener = (event: QueueEvent, job?: JobRef) => void;

export interface EnqueueOptions {
  readonly clientId?: string;
  /**
   * Who the job counts against for maxPendingPerClient: the clientId when absent. A job queued without a
   * clientId gets its caller's API key or address here, so leaving clientId out does not escape the limit.
   */
  readonly limitKey?: string;
  /** Higher runs first; equal priorities run first in, first out. */
  readonly priority?: number;
  readonly id?: string;
}

export type { BatchRef };

export interface BatchJob {
  readonly workflow: unknown;
  readonly batch: BatchRef;
}

export interface EnqueueResult {
  readonly id: string;
  /** Jobs ahead of this one (running ones included): 0 means it starts right away. */
  readonly position: number;
}

type Awaitable<T> = T | Promise<T>;

export interface JobQueuePort {
  /** Validates and queues a workflow: 400 with every problem, 429 with Retry-After when full or over a client's limit. */
  enqueue(workflow: unknown, options?: EnqueueOptions): Awaitable<EnqueueResult>;
  /**
   * Validates every workflow and queues them all or none: 400 with the problems of the first invalid one, or
   * when the batch is larger than the queue (or a client) may ever hold; 429 with Retry-After when they do not
   * all fit now. Results in the batch's order.
   */
  enqueueBatch(jobs: readonly BatchJob[], options?: Omit<EnqueueOptions, "id">): Awaitable<EnqueueResult[]>;
  snapshot(): Awaitable<QueueSnapshot>;
  status(): QueueStatus;
  /** Stops the given running job (every running job when no id is given); false when none was running. */
  interrupt(jobId?: string): Awaitable<boolean>;
  /** Removes pending jobs; returns the ids that were removed. */
  cancel(ids: readonly string[]): Awaitable<string[]>;
  clearPending(): Awaitable<number>;
  subscribe(listener: QueueListener): () => void;
  /** Resolves with the history entry once the job has finished (whatever its status). */
  waitFor(id: string): Promise<HistoryEntry>;
  /** Stops this process's part: the embedded queue drops pending jobs and stops the running one; the Redis queue only disconnects. */
  close(): Promise<void>;
}
