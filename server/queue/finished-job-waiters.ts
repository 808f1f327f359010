import type { HistoryEntry, HistoryStore } from "../storage/history-store.ts";

/** The reason a wait ends without a history entry: the job was removed, or this server stopped watching it. */
export class JobCancelledError extends Error {
  constructor(
    readonly jobId: string,
    reason = "was removed from the queue before it ran",
  ) {
    super(`job ${jobId} ${reason}`);
    this.name = "JobCancelledError";
  }
}

/**
 * Callers waiting for a job to finish (the Segmind endpoint, the tests): both queues settle them when
 * they record the job's history entry, or drop them when a pending job is removed, and a job already in
 * history answers at once.
 */
export class FinishedJobWaiters {
  readonly #waiting = new Map<string, Array<{ resolve: (entry: HistoryEntry) => void; reject: (error: Error) => void }>>();

  constructor(private readonly history: HistoryStore) {}

  waitFor(id: string): Promise<HistoryEntry> {
    const done = this.history.get(id);
    if (done) return Promise.resolve(done);
    // Finished before this server's recent memory: its entry is read from its file.
    if (this.history.isFinished(id)) {
      return this.history.read(id).then((entry) => entry ?? Promise.reject(new JobCancelledError(id, "was deleted from history")));
    }
    return new Promise((resolve, reject) => {
      const list = this.#waiting.get(id) ?? [];
      list.push({ resolve, reject });
      this.#waiting.set(id, list);
    });
  }

  settle(entry: HistoryEntry): void {
    for (const waiter of this.#waiting.get(entry.id) ?? []) waiter.resolve(entry);
    this.#waiting.delete(entry.id);
  }

  /** The job will never finish here: its waiters get a JobCancelledError. */
  drop(id: string, reason?: string): void {
    for (const waiter of this.#waiting.get(id) ?? []) waiter.reject(new JobCancelledError(id, reason));
    this.#waiting.delete(id);
  }

  /** Every wait ends (the queue is closing). */
  dropAll(reason: string): void {
    for (const id of [...this.#waiting.keys()]) this.drop(id, reason);
  }
}
