/**
 * The embedded queue: FIFO (higher priority first), bounded, one job at a time, each finished job
 * recorded in history. Events of the running job go to every subscriber (the WebSocket hub).
 */
import { consoleLog, describeFailure, type ServerLog } from "../logging/server-log.ts";
import { randomUUID } from "node:crypto";
import type { Executor, JobResult } from "../executor/executor.ts";
import { JobInterruptedError } from "../executor/job-interrupted.ts";
import { FinishedJobWaiters } from "./finished-job-waiters.ts";
import { CUT_OFF_MESSAGE, type HistoryEntry, type HistoryStore } from "../storage/history-store.ts";
import type { BatchJob, EnqueueOptions, EnqueueResult, JobQueuePort, QueuedJob, QueueEvent, QueueListener, QueueSnapshot, QueueStatus } from "./job-queue-port.ts";
import { batchDoesNotFitError, batchOverLimitError, clientQueueFullError, queueFullError, retryAfterSeconds } from "./queue-limits.ts";
import { validateEach } from "./validate-each.ts";

export interface JobQueueOptions {
  readonly log?: ServerLog;
  readonly executor: Executor;
  readonly history: HistoryStore;
  /** Pending jobs allowed at once; one more is a 429. */
  readonly maxPending?: number;
  /** Pending jobs one clientId may have at once; one more is a 429 (unlimited when absent). */
  readonly maxPendingPerClient?: number;
}

export class JobQueue implements JobQueuePort {
  readonly #log: ServerLog;
  readonly #executor: Executor;
  readonly #history: HistoryStore;
  readonly #maxPending: number;
  readonly #maxPendingPerClient: number;
  readonly #pending: QueuedJob[] = [];
  readonly #listeners = new Set<QueueListener>();
  readonly #waiters: FinishedJobWaiters;
  #running: { job: QueuedJob; abort: AbortController } | undefined;
  #recentDurationsMs: number[] = [];
  #idle: Promise<void> = Promise.resolve();

  constructor(options: JobQueueOptions) {
    this.#log = options.log ?? consoleLog;
    this.#executor = options.executor;
    this.#history = options.history;
    this.#waiters = new FinishedJobWaiters(options.history);
    this.#maxPending = options.maxPending ?? 100;
    this.#maxPendingPerClient = options.maxPendingPerClient ?? Infinity;
  }

  /**
   * Validates and queues a workflow; 400 with every problem, 429 with Retry-After when full. Answers once the
   * job is recorded in history as queued, so a job the caller was told about survives a crash as a record.
   */
  async enqueue(workflow: unknown, options: EnqueueOptions = {}): Promise<EnqueueResult> {
    const valid = this.#executor.validate(workflow);
    if (this.#pending.length >= this.#maxPending) {
      // A place frees when the running job ends and the first pending one starts.
      throw queueFullError(this.#maxPending, retryAfterSeconds(1, this.#recentDurationsMs));
    }
    const limitKey = options.limitKey ?? options.clientId;
    if (limitKey !== undefined && this.#pending.filter((job) => job.limitKey === limitKey).length >= this.#maxPendingPerClient) {
      // The caller has room once its first waiting job starts: every job ahead of that one must end.
      const ahead = this.#pending.findIndex((job) => job.limitKey === limitKey) + (this.#running ? 1 : 0);
      throw clientQueueFullError(limitKey, this.#maxPendingPerClient, retryAfterSeconds(ahead, this.#recentDurationsMs));
    }
    const job: QueuedJob = {
      id: options.id ?? randomUUID(),
      workflow: valid,
      clientId: options.clientId,
      limitKey,
      priority: options.priority ?? 0,
      createdAt: new Date().toISOString(),
    };
    const position = this.#insert(job);
    this.#broadcastStatus();
    this.#pump();
    await this.#recordAccepted(job);
    return { id: job.id, position };
  }

  /** Every job of the batch queued, or none (see JobQueuePort.enqueueBatch). */
  async enqueueBatch(jobs: readonly BatchJob[], options: Omit<EnqueueOptions, "id"> = {}): Promise<EnqueueResult[]> {
    const valid = await validateEach(this.#executor, jobs);
    const limitKey = options.limitKey ?? options.clientId;
    if (jobs.length > this.#maxPending) throw batchOverLimitError(jobs.length, this.#maxPending, "the queue");
    if (limitKey !== undefined && jobs.length > this.#maxPendingPerClient) throw batchOverLimitError(jobs.length, this.#maxPendingPerClient, "one client");
    const room = this.#maxPending - this.#pending.length;
    if (jobs.length > room) {
      // Places free as running and waiting jobs end: this many must end first.
      throw batchDoesNotFitError(jobs.length, room, undefined, retryAfterSeconds(jobs.length - room, this.#recentDurationsMs));
    }
    if (limitKey !== undefined) {
      const own = this.#pending.filter((job) => job.limitKey === limitKey);
      const clientRoom = this.#maxPendingPerClient - own.length;
      if (jobs.length > clientRoom) {
        const mustStart = jobs.length - clientRoom;
        const ahead = this.#pending.indexOf(own[mustStart - 1]) + 1 + (this.#running ? 1 : 0);
        throw batchDoesNotFitError(jobs.length, clientRoom, limitKey, retryAfterSeconds(ahead, this.#recentDurationsMs));
      }
    }
    const createdAt = new Date().toISOString();
    const queued = jobs.map(
      (job, i): QueuedJob => ({ id: randomUUID(), workflow: valid[i], clientId: options.clientId, limitKey, priority: options.priority ?? 0, createdAt, batch: job.batch }),
    );
    // Positions are read once all are in: later jobs of the batch never go ahead of earlier ones.
    for (const job of queued) this.#insert(job);
    const running = this.#running ? 1 : 0;
    const results = queued.map((job) => ({ id: job.id, position: this.#pending.indexOf(job) + running }));
    this.#broadcastStatus();
    this.#pump();
    // One after the other: each record's JSON is made on the event loop, and a file write between two lets it breathe.
    for (const job of queued) await this.#recordAccepted(job);
    return results;
  }

  /** Stable insertion, after every job of the same or higher priority; returns the jobs ahead of it (0: starts now). */
  #insert(job: QueuedJob): number {
    let index = this.#pending.length;
    while (index > 0 && this.#pending[index - 1].priority < job.priority) index--;
    this.#pending.splice(index, 0, job);
    return index + (this.#running ? 1 : 0);
  }

  /** Answers once the job is recorded in history as queued, so a job the caller was told about survives a crash as a record. */
  async #recordAccepted(job: QueuedJob): Promise<void> {
    try {
      await this.#history.accepted(job);
    } catch (error) {
      // The job runs all the same; its end is recorded when it comes (a failed write must not stop the queue).
      this.#log.error(`could not record queued job ${job.id} in history: ${(error as Error).message}`);
    }
  }

  snapshot(): QueueSnapshot {
    return { running: this.#running ? [this.#running.job] : [], pending: [...this.#pending] };
  }

  status(): QueueStatus {
    return { queueRemaining: this.#pending.length + (this.#running ? 1 : 0), running: this.#running?.job.id ?? null };
  }

  /** Stops the running job (or the given one), at its next progress check. */
  interrupt(jobId?: string): boolean {
    if (!this.#running || (jobId && this.#running.job.id !== jobId)) return false;
    this.#running.abort.abort(new JobInterruptedError());
    return true;
  }

  /** Removes pending jobs; returns the ids that were removed. */
  cancel(ids: readonly string[]): string[] {
    const removed: string[] = [];
    for (const id of ids) {
      const index = this.#pending.findIndex((job) => job.id === id);
      if (index >= 0) {
        this.#pending.splice(index, 1);
        removed.push(id);
      }
    }
    for (const id of removed) this.#waiters.drop(id);
    this.#discardRecords(removed);
    if (removed.length) this.#broadcastStatus();
    return removed;
  }

  clearPending(): number {
    const count = this.#pending.length;
    for (const job of this.#pending) this.#waiters.drop(job.id);
    this.#discardRecords(this.#pending.map((job) => job.id));
    this.#pending.length = 0;
    this.#broadcastStatus();
    return count;
  }

  subscribe(listener: QueueListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves with the history entry once the job has finished (whatever its status). */
  waitFor(id: string): Promise<HistoryEntry> {
    return this.#waiters.waitFor(id);
  }

  /** Drops pending jobs, stops the running one and waits for it to end. */
  async close(): Promise<void> {
    // Jobs that will not run stay in history as cut off (the clear below then finds no queued record to remove).
    const recorded = this.#pending.map((job) => this.#history.cutOff(job.id, CUT_OFF_MESSAGE).catch(() => {}));
    this.clearPending();
    this.interrupt();
    await this.drain();
    await Promise.all(recorded);
  }

  /** Cancelled jobs leave history, as they always have: only their "queued" records are removed. */
  #discardRecords(ids: readonly string[]): void {
    if (!ids.length) return;
    this.#history.discardQueued(ids).catch((error: unknown) => this.#log.error(`could not remove cancelled jobs from history: ${(error as Error).message}`));
  }

  /** Resolves once nothing is running or pending (for a clean shutdown). */
  async drain(): Promise<void> {
    while (this.#running || this.#pending.length) await this.#idle;
  }

  #emit(event: QueueEvent, job?: QueuedJob): void {
    for (const listener of this.#listeners) listener(event, job);
  }

  #broadcastStatus(): void {
    this.#emit({ type: "status", status: this.status() });
  }

  #pump(): void {
    if (this.#running) return;
    const job = this.#pending.shift();
    if (!job) return;
    const abort = new AbortController();
    this.#running = { job, abort };
    this.#idle = this.#execute(job, abort.signal).finally(() => {
      this.#running = undefined;
      this.#broadcastStatus();
      this.#pump();
    });
  }

  async #execute(job: QueuedJob, signal: AbortSignal): Promise<void> {
    this.#broadcastStatus();
    const started = Date.now();
    let result: JobResult;
    try {
      result = await this.#executor.run(job.workflow, {
        jobId: job.id,
        signal,
        onEvent: (event) => this.#emit(event, job),
      });
    } catch (error) {
      // The executor turns node failures into results, so only a bug (a listener that threw) lands here:
      // record it like a failed job, so its waiters answer and the queue goes on instead of an unhandled rejection.
      const message = error instanceof Error ? error.message : String(error);
      this.#log.error(`job ${job.id} stopped unexpectedly: ${describeFailure(error)}`);
      result = { status: "error", outputs: {}, executed: [], cached: [], error: { message } };
    }
    const finished = Date.now();
    this.#recentDurationsMs = [...this.#recentDurationsMs.slice(-19), finished - started];
    const entry: HistoryEntry = {
      id: job.id,
      status: result.status,
      clientId: job.clientId,
      workflow: job.workflow,
      createdAt: job.createdAt,
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date(finished).toISOString(),
      durationMs: finished - started,
      ...(job.batch ? { batch: job.batch } : {}),
      outputs: result.outputs,
      error: result.error,
      executed: result.executed,
      cached: result.cached,
    };
    try {
      await this.#history.add(entry);
    } catch (error) {
      // The job's outputs are on disk already; a failed history write must not stop the queue.
      this.#log.error(`could not write history for job ${job.id}: ${(error as Error).message}`);
    }
    this.#waiters.settle(entry);
  }
}
