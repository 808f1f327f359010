/**
 * The job queue on Redis (BullMQ), for `maskflow serve --redis URL`: the server validates and queues,
 * any number of `maskflow worker` processes run the jobs. Same HTTP API and WebSocket events as the
 * embedded queue:
 *
 * - Live execution events come from the workers over pub/sub (see redis-events.ts) and go to the
 *   subscribers (the WebSocket hub) as they arrive.
 * - Results come from Redis, not pub/sub: on BullMQ's `completed`/`failed` event (a stream, read on
 *   from where it stopped after a reconnect), and by a sweep of finished jobs at start and after every
 *   reconnect, the server writes the history entry and then removes the job from Redis. So a job
 *   finished while the server was away is recorded when it comes back, and recorded once.
 * - Crashed or killed workers: BullMQ's stalled-job check (on the workers) puts their jobs back to
 *   wait, and another worker runs them. A job that failed in a node or in validation is a normal
 *   result (status "error") and is never retried.
 */
import { consoleLog, type ServerLog } from "../logging/server-log.ts";
import { randomUUID } from "node:crypto";
import { type Job, Queue, QueueEvents } from "bullmq";
import type { Redis } from "ioredis";
import type { Executor } from "../executor/executor.ts";
import type { WorkflowDocument } from "../workflow/workflow-document.ts";
import { HttpError } from "../http/http-error.ts";
import { FinishedJobWaiters } from "./finished-job-waiters.ts";
import type { HistoryEntry, HistoryStore } from "../storage/history-store.ts";
import type {
  BatchJob,
  EnqueueOptions,
  EnqueueResult,
  JobQueuePort,
  JobRef,
  QueuedJob,
  QueueEvent,
  QueueListener,
  QueueSnapshot,
  QueueStatus,
} from "./job-queue-port.ts";
import { batchDoesNotFitError, batchOverLimitError, clientQueueFullError, queueFullError, retryAfterSeconds } from "./queue-limits.ts";
import { connectRedis, oncePerOutage } from "./redis-connection.ts";
import { validateEach } from "./validate-each.ts";
import {
  channelNames,
  decodeEventMessage,
  DEFAULT_QUEUE_NAME,
  fromBullPriority,
  INTERRUPT_TTL_SECONDS,
  KEY_PREFIX,
  type MaskflowJobData,
  type MaskflowJobReturn,
  toBullPriority,
} from "./redis-events.ts";

export interface BullMqJobQueueOptions {
  readonly log?: ServerLog;
  readonly redisUrl: string;
  /** Validates workflows before they are queued (the workers validate again, against their registry). */
  readonly executor: Executor;
  readonly history: HistoryStore;
  readonly queueName?: string;
  readonly maxPending?: number;
  readonly maxPendingPerClient?: number;
  /** How long an HTTP request waits for Redis before it gets a 503 (default 5 s). */
  readonly redisTimeoutMs?: number;
}

type PendingState = "waiting" | "prioritized" | "delayed";
const PENDING_STATES: PendingState[] = ["waiting", "prioritized", "delayed"];
/** How long one enqueue may hold the lock (it expires by itself if the server dies holding it), and wait for it. */
const ENQUEUE_LOCK_TTL_MS = 5_000;
const ENQUEUE_LOCK_WAIT_MS = 10_000;
const RELEASE_LOCK_SCRIPT = 'if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end';
/** Bounds every sweep of finished jobs and every page of a clear, so no loop runs unbounded. */
const SWEEP_PAGE = 500;
const MAX_CLEAR_PAGES = 1000;

type MaskflowJob = Job<MaskflowJobData, MaskflowJobReturn>;

export class BullMqJobQueue implements JobQueuePort {
  readonly queueName: string;
  readonly #log: ServerLog;
  readonly #executor: Executor;
  readonly #history: HistoryStore;
  readonly #maxPending: number;
  readonly #maxPendingPerClient: number;
  readonly #redisTimeoutMs: number;
  readonly #channels: ReturnType<typeof channelNames>;
  readonly #connection: Redis;
  readonly #eventsConnection: Redis;
  readonly #subscriber: Redis;
  readonly #queue: Queue<MaskflowJobData, MaskflowJobReturn>;
  readonly #queueEvents: QueueEvents;
  readonly #listeners = new Set<QueueListener>();
  readonly #waiters: FinishedJobWaiters;
  readonly #recording = new Set<string>();
  #status: QueueStatus = { queueRemaining: 0, running: null };
  #statusRefresh: Promise<void> | undefined;
  #statusDirty = false;
  #recentDurationsMs: number[] = [];
  #closed = false;

  /** Connects, subscribes and records whatever finished while no server was listening. */
  static async open(options: BullMqJobQueueOptions): Promise<BullMqJobQueue> {
    const queue = new BullMqJobQueue(options);
    try {
      await queue.#start();
    } catch (error) {
      await queue.close();
      throw error;
    }
    return queue;
  }

  private constructor(options: BullMqJobQueueOptions) {
    this.#log = options.log ?? consoleLog;
    this.queueName = options.queueName ?? DEFAULT_QUEUE_NAME;
    this.#executor = options.executor;
    this.#history = options.history;
    this.#waiters = new FinishedJobWaiters(options.history);
    this.#maxPending = options.maxPending ?? 100;
    this.#maxPendingPerClient = options.maxPendingPerClient ?? Infinity;
    this.#redisTimeoutMs = options.redisTimeoutMs ?? 5000;
    this.#channels = channelNames(this.queueName);
    this.#connection = connectRedis(options.redisUrl, "maskflow-server");
    this.#eventsConnection = connectRedis(options.redisUrl, "maskflow-server-events");
    this.#subscriber = connectRedis(options.redisUrl, "maskflow-server-subscriber");
    this.#queue = new Queue<MaskflowJobData, MaskflowJobReturn>(this.queueName, { connection: this.#connection, prefix: KEY_PREFIX });
    this.#queueEvents = new QueueEvents(this.queueName, { connection: this.#eventsConnection, prefix: KEY_PREFIX, autorun: false });
  }

  async #start(): Promise<void> {
    const logError = oncePerOutage(this.#connection, (message) => this.#log.warn(`redis queue: ${message}`));
    this.#queue.on("error", logError);
    this.#queueEvents.on("error", logError);
    this.#queueEvents.on("completed", ({ jobId }) => void this.#record(jobId));
    this.#queueEvents.on("failed", ({ jobId }) => void this.#record(jobId));
    for (const name of ["added", "waiting", "active", "removed", "stalled", "completed", "failed"] as const) {
      this.#queueEvents.on(name, () => this.#refreshStatus());
    }
    this.#subscriber.on("messageBuffer", (_channel: Buffer, message: Buffer) => {
      let decoded: { job: JobRef; event: QueueEvent };
      try {
        decoded = decodeEventMessage(message);
      } catch (error) {
        this.#log.warn(`ignored a malformed event from a worker: ${(error as Error).message}`);
        return;
      }
      this.#emit(decoded.event, decoded.job);
    });
    // After a Redis restart: catch up on jobs that finished while we were cut off.
    this.#connection.on("ready", () => {
      void this.#sweepFinished();
      this.#refreshStatus();
    });
    await this.#queue.waitUntilReady();
    await this.#subscriber.subscribe(this.#channels.events);
    void this.#queueEvents.run().catch(logError);
    await this.#queueEvents.waitUntilReady();
    await this.#sweepFinished();
    await this.#settleLostJobs();
    await this.#refreshStatusNow();
  }

  async enqueue(workflow: unknown, options: EnqueueOptions = {}): Promise<EnqueueResult> {
    const valid = this.#executor.validate(workflow);
    return this.#withRedis("queue the job", () => this.#withEnqueueLock(() => this.#addWithinLimits(valid, options)));
  }

  /** Every job of the batch queued, or none (see JobQueuePort.enqueueBatch): counted and added under the enqueue lock. */
  async enqueueBatch(jobs: readonly BatchJob[], options: Omit<EnqueueOptions, "id"> = {}): Promise<EnqueueResult[]> {
    const valid = await validateEach(this.#executor, jobs);
    const limitKey = options.limitKey ?? options.clientId;
    if (jobs.length > this.#maxPending) throw batchOverLimitError(jobs.length, this.#maxPending, "the queue");
    if (limitKey !== undefined && jobs.length > this.#maxPendingPerClient) throw batchOverLimitError(jobs.length, this.#maxPendingPerClient, "one client");
    return this.#withRedis("queue the batch", () =>
      this.#withEnqueueLock(async () => {
        const counts = await this.#queue.getJobCounts(...PENDING_STATES);
        const room = this.#maxPending - PENDING_STATES.reduce((sum, state) => sum + (counts[state] ?? 0), 0);
        if (jobs.length > room) throw batchDoesNotFitError(jobs.length, Math.max(0, room), undefined, retryAfterSeconds(jobs.length - room, this.#recentDurationsMs));
        if (limitKey !== undefined && Number.isFinite(this.#maxPendingPerClient)) {
          const waiting = await this.#queue.getJobs(PENDING_STATES, 0, this.#maxPending);
          const own = waiting.filter((job) => (job.data?.limitKey ?? job.data?.clientId) === limitKey).sort((a, b) => a.timestamp - b.timestamp);
          const clientRoom = this.#maxPendingPerClient - own.length;
          if (jobs.length > clientRoom) {
            const mustStart = own[jobs.length - clientRoom - 1];
            const ahead = 1 + waiting.filter((job) => job.timestamp <= mustStart.timestamp).length;
            throw batchDoesNotFitError(jobs.length, clientRoom, limitKey, retryAfterSeconds(ahead, this.#recentDurationsMs));
          }
        }
        const priority = options.priority ?? 0;
        const createdAt = new Date().toISOString();
        const added = jobs.map((job, i) => ({
          id: randomUUID(),
          data: { workflow: valid[i], clientId: options.clientId, limitKey, priority, createdAt, batch: job.batch } satisfies MaskflowJobData,
        }));
        await this.#queue.addBulk(
          added.map(({ id, data }) => ({
            name: "workflow",
            data,
            opts: { jobId: id, priority: toBullPriority(priority), attempts: 3, backoff: { type: "fixed" as const, delay: 1000 } },
          })),
        );
        // One after the other, each a file write apart: every record's JSON is made on the event loop.
        const recorded = (async () => {
          for (const { id, data } of added) {
            await this.#history
              .accepted({ id, clientId: data.clientId, workflow: data.workflow, createdAt, batch: data.batch })
              .catch((error: unknown) => this.#log.error(`could not record queued job ${id} in history: ${(error as Error).message}`));
          }
        })();
        const ranks = Array.from({ length: toBullPriority(priority) }, (_, index) => index + 1);
        const ahead = Object.values(await this.#queue.getCountsPerPriority(ranks)).reduce((sum, count) => sum + count, 0) - added.length;
        const active = (await this.#queue.getJobCounts("active")).active ?? 0;
        this.#refreshStatus();
        await recorded;
        return added.map(({ id }, i) => ({ id, position: active + Math.max(0, ahead) + i }));
      }),
    );
  }

  /**
   * Runs `work` while holding a short Redis lock, so that counting the waiting jobs and adding one is a
   * single step for every server on this queue (without it, a burst overshot the limits).
   */
  async #withEnqueueLock<T>(work: () => Promise<T>): Promise<T> {
    const token = randomUUID();
    const deadline = Date.now() + ENQUEUE_LOCK_WAIT_MS;
    while ((await this.#connection.set(this.#channels.enqueueLock, token, "PX", ENQUEUE_LOCK_TTL_MS, "NX")) !== "OK") {
      if (Date.now() > deadline) throw new Error("timed out waiting for the queue's enqueue lock");
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    try {
      return await work();
    } finally {
      // Release only our own lock (it may have expired and been taken by another server meanwhile).
      await this.#connection.eval(RELEASE_LOCK_SCRIPT, 1, this.#channels.enqueueLock, token);
    }
  }

  async #addWithinLimits(valid: WorkflowDocument, options: EnqueueOptions): Promise<EnqueueResult> {
    const counts = await this.#queue.getJobCounts(...PENDING_STATES, "active");
    const pending = PENDING_STATES.reduce((sum, state) => sum + (counts[state] ?? 0), 0);
    // A place frees when a running job ends and a waiting one starts.
    if (pending >= this.#maxPending) throw queueFullError(this.#maxPending, retryAfterSeconds(1, this.#recentDurationsMs));
    const clientId = options.clientId;
    const limitKey = options.limitKey ?? clientId;
    if (limitKey !== undefined && Number.isFinite(this.#maxPendingPerClient)) {
      // The queue holds at most maxPending waiting jobs, so this scan is bounded by it.
      const waiting = await this.#queue.getJobs(PENDING_STATES, 0, this.#maxPending);
      const own = waiting.filter((job) => (job.data?.limitKey ?? job.data?.clientId) === limitKey).length;
      if (own >= this.#maxPendingPerClient) {
        // The caller has room once its first waiting job starts (at least one running job must end first).
        const oldestOwn = Math.min(...waiting.filter((job) => (job.data?.limitKey ?? job.data?.clientId) === limitKey).map((job) => job.timestamp));
        const ahead = 1 + waiting.filter((job) => job.timestamp < oldestOwn).length;
        throw clientQueueFullError(limitKey, this.#maxPendingPerClient, retryAfterSeconds(ahead, this.#recentDurationsMs));
      }
    }
    const priority = options.priority ?? 0;
    const bullPriority = toBullPriority(priority);
    const id = options.id ?? randomUUID();
    const data: MaskflowJobData = { workflow: valid, clientId, limitKey, priority, createdAt: new Date().toISOString() };
    await this.#queue.add("workflow", data, {
      jobId: id,
      priority: bullPriority,
      // Only a processor that throws (not a node error, which is a result) uses these.
      attempts: 3,
      backoff: { type: "fixed", delay: 1000 },
    });
    // In history from now on: a job that finishes first is recorded whole, and this then leaves it alone.
    const recorded = this.#history
      .accepted({ id, clientId, workflow: valid, createdAt: data.createdAt })
      .catch((error: unknown) => this.#log.error(`could not record queued job ${id} in history: ${(error as Error).message}`));
    // Ahead of it: what runs, and what waits at the same or a higher priority (it included, so − 1).
    const ranks = Array.from({ length: bullPriority }, (_, index) => index + 1);
    const perPriority = await this.#queue.getCountsPerPriority(ranks);
    const sameOrHigher = Object.values(perPriority).reduce((sum, count) => sum + count, 0);
    this.#refreshStatus();
    await recorded;
    return { id, position: (counts.active ?? 0) + Math.max(0, sameOrHigher - 1) };
  }

  async snapshot(): Promise<QueueSnapshot> {
    return this.#withRedis("read the queue", async () => {
      const [active, pending] = await Promise.all([
        this.#queue.getJobs(["active"], 0, -1, true),
        this.#queue.getJobs(PENDING_STATES, 0, this.#maxPending * 2, true),
      ]);
      const running = active.flatMap((job) => this.#describe(job)).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
      const waiting = pending
        .filter((job) => job.id !== undefined)
        .sort((a, b) => a.priority - b.priority || a.timestamp - b.timestamp)
        .flatMap((job) => this.#describe(job));
      return { running, pending: waiting };
    });
  }

  status(): QueueStatus {
    return this.#status;
  }

  async interrupt(jobId?: string): Promise<boolean> {
    return this.#withRedis("interrupt the job", async () => {
      const ids = jobId ? [jobId] : (await this.#queue.getActive()).flatMap((job) => (job.id ? [job.id] : []));
      let interrupted = false;
      for (const id of ids) {
        if ((await this.#queue.getJobState(id)) !== "active") continue;
        await this.#connection.set(this.#channels.interruptedKey(id), "1", "EX", INTERRUPT_TTL_SECONDS);
        await this.#connection.publish(this.#channels.control, JSON.stringify({ type: "interrupt", jobId: id }));
        interrupted = true;
      }
      return interrupted;
    });
  }

  async cancel(ids: readonly string[]): Promise<string[]> {
    return this.#withRedis("cancel jobs", async () => {
      const removed: string[] = [];
      for (const id of ids) {
        const state = await this.#queue.getJobState(id);
        if (!PENDING_STATES.includes(state as PendingState)) continue;
        // BullMQ refuses to remove a job a worker has locked, so a job that just started stays.
        if ((await this.#queue.remove(id)) === 1) removed.push(id);
      }
      for (const id of removed) this.#waiters.drop(id);
      await this.#history.discardQueued(removed);
      if (removed.length) this.#refreshStatus();
      return removed;
    });
  }

  async clearPending(): Promise<number> {
    return this.#withRedis("clear the queue", async () => {
      let cleared = 0;
      for (let page = 0; page < MAX_CLEAR_PAGES; page++) {
        const jobs = await this.#queue.getJobs(PENDING_STATES, 0, SWEEP_PAGE - 1);
        const ids = jobs.flatMap((job) => (job.id ? [job.id] : []));
        if (!ids.length) break;
        const results = await Promise.all(ids.map((id) => this.#queue.remove(id)));
        ids.forEach((id, index) => results[index] === 1 && this.#waiters.drop(id));
        await this.#history.discardQueued(ids.filter((_, index) => results[index] === 1));
        const removedNow = results.filter((result) => result === 1).length;
        cleared += removedNow;
        if (!removedNow) break;
      }
      this.#refreshStatus();
      return cleared;
    });
  }

  subscribe(listener: QueueListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves with the history entry once the job has finished (whatever its status). */
  waitFor(id: string): Promise<HistoryEntry> {
    return this.#waiters.waitFor(id);
  }

  /** Disconnects; the jobs stay in Redis for the workers (and for the next server). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    // The jobs stay in Redis and finish on the workers, but this server will not record them.
    this.#waiters.dropAll("is still queued in Redis, but this server stopped watching it");
    await Promise.allSettled([this.#queueEvents.close(), this.#queue.close()]);
    for (const connection of [this.#subscriber, this.#eventsConnection, this.#connection]) {
      connection.disconnect();
    }
  }

  #emit(event: QueueEvent, job?: JobRef): void {
    for (const listener of this.#listeners) listener(event, job);
  }

  #describe(job: MaskflowJob): QueuedJob[] {
    if (!job.id || !job.data) return [];
    return [
      {
        id: job.id,
        workflow: job.data.workflow,
        clientId: job.data.clientId,
        priority: job.data.priority ?? fromBullPriority(job.priority),
        createdAt: job.data.createdAt,
        ...(job.data.batch ? { batch: job.data.batch } : {}),
      },
    ];
  }

  /** Runs a Redis operation for an HTTP request: 503 at once while disconnected, or after the timeout. */
  async #withRedis<T>(what: string, operation: () => Promise<T>): Promise<T> {
    const unavailable = () =>
      new HttpError(503, "queue_unavailable", `could not ${what}: Redis is not reachable right now; try again shortly`, undefined, {
        "Retry-After": "2",
      });
    if (this.#connection.status !== "ready") throw unavailable();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(unavailable()), this.#redisTimeoutMs);
    });
    try {
      return await Promise.race([operation(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  #refreshStatus(): void {
    if (this.#closed) return;
    if (this.#statusRefresh) {
      this.#statusDirty = true;
      return;
    }
    this.#statusRefresh = this.#refreshStatusNow()
      .catch(() => {})
      .finally(() => {
        this.#statusRefresh = undefined;
        if (this.#statusDirty) {
          this.#statusDirty = false;
          this.#refreshStatus();
        }
      });
  }

  async #refreshStatusNow(): Promise<void> {
    const [counts, active] = await Promise.all([this.#queue.getJobCounts(...PENDING_STATES, "active"), this.#queue.getActive(0, 0)]);
    const remaining = [...PENDING_STATES, "active" as const].reduce((sum, state) => sum + (counts[state] ?? 0), 0);
    const status: QueueStatus = { queueRemaining: remaining, running: active[0]?.id ?? null };
    if (status.queueRemaining === this.#status.queueRemaining && status.running === this.#status.running) return;
    this.#status = status;
    this.#emit({ type: "status", status });
  }

  async #sweepFinished(): Promise<void> {
    if (this.#closed) return;
    try {
      const finished = await this.#queue.getJobs(["completed", "failed"], 0, SWEEP_PAGE - 1, true);
      for (const job of finished) if (job.id) await this.#record(job.id);
    } catch (error) {
      this.#log.warn(`could not sweep finished jobs: ${(error as Error).message}`);
    }
  }

  /**
   * Jobs history holds as queued that Redis no longer knows (its data was lost while this server was away):
   * they will never finish, so they are recorded as cut off. Runs after the first sweep, which has recorded
   * every job that did finish.
   */
  async #settleLostJobs(): Promise<void> {
    for (const id of this.#history.unfinishedIds()) {
      try {
        if ((await this.#queue.getJobState(id)) === "unknown") await this.#history.cutOff(id, "cut off: Redis no longer holds this job, so it will not run");
      } catch (error) {
        this.#log.warn(`could not check job ${id} in Redis: ${(error as Error).message}`);
        return;
      }
    }
  }

  /** Writes a finished job's history entry, wakes its waiters, then removes it from Redis. Once per job. */
  async #record(jobId: string): Promise<void> {
    if (this.#recording.has(jobId) || this.#closed) return;
    this.#recording.add(jobId);
    try {
      const job = (await this.#queue.getJob(jobId)) as MaskflowJob | undefined;
      if (!job?.data) return;
      const state = await job.getState();
      if (state !== "completed" && state !== "failed") return;
      const entry = this.#entryOf(job, state);
      if (state === "failed") {
        // No worker lived to say so (it crashed or stalled too often): tell the client here.
        this.#emit({ type: "execution_error", jobId, message: entry.error?.message ?? "the job failed" }, { id: jobId, clientId: job.data.clientId });
      }
      this.#recentDurationsMs = [...this.#recentDurationsMs.slice(-19), entry.durationMs];
      try {
        await this.#history.add(entry);
      } catch (error) {
        this.#log.error(`could not write history for job ${jobId}: ${(error as Error).message}`);
        return;
      }
      this.#waiters.settle(entry);
      await job.remove().catch(() => {});
    } catch (error) {
      this.#log.warn(`could not record job ${jobId}: ${(error as Error).message}`);
    } finally {
      this.#recording.delete(jobId);
    }
  }

  #entryOf(job: MaskflowJob, state: "completed" | "failed"): HistoryEntry {
    const data = job.data;
    const returned = state === "completed" ? job.returnvalue : undefined;
    if (returned?.result) {
      return {
        id: job.id!,
        status: returned.result.status,
        clientId: data.clientId,
        workflow: data.workflow,
        createdAt: data.createdAt,
        startedAt: returned.startedAt,
        finishedAt: returned.finishedAt,
        durationMs: returned.durationMs,
        outputs: returned.result.outputs,
        error: returned.result.error,
        executed: returned.result.executed,
        cached: returned.result.cached,
        ...(data.batch ? { batch: data.batch } : {}),
      };
    }
    const started = job.processedOn ?? job.timestamp;
    const finished = job.finishedOn ?? Date.now();
    const reason = job.failedReason || "the worker returned no result";
    return {
      id: job.id!,
      status: "error",
      clientId: data.clientId,
      workflow: data.workflow,
      createdAt: data.createdAt,
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date(finished).toISOString(),
      durationMs: Math.max(0, finished - started),
      outputs: {},
      error: { message: `the job failed after ${job.attemptsMade} attempt(s): ${reason}` },
      executed: [],
      cached: [],
      ...(data.batch ? { batch: data.batch } : {}),
    };
  }
}
