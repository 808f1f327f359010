import type { HistoryEntry, HistoryStore } from "../storage/history-store.ts";

/**
 * Callers waiting for a job to finish (the Segmind endpoint, the tests): both queues settle them when
 * they record the job's history entry, and a job already in history answers at once.
 */
export class FinishedJobWaiters {
  readonly #waiting = new Map<string, Array<(entry: HistoryEntry) => void>>();

  constructor(private readonly history: HistoryStore) {}

  waitFor(id: string): Promise<HistoryEntry> {
    const done = this.history.get(id);
    if (done) return Promise.resolve(done);
    return new Promise((resolve) => {
      const list = this.#waiting.get(id) ?? [];
      list.push(resolve);
      this.#waiting.set(id, list);
    });
  }

  settle(entry: HistoryEntry): void {
    for (const resolve of this.#waiting.get(entry.id) ?? []) resolve(entry);
    this.#waiting.delete(entry.id);
  }
}
