import type { NodeOutputRecord } from "../executor/execution-event.ts";
import type { JobStatus } from "../executor/executor.ts";
import { writeFileAtomic } from "./atomic-write.ts";
import { readTextIfPresent } from "./read-text-if-present.ts";

export interface HistoryEntry {
  readonly id: string;
  readonly status: JobStatus;
  readonly clientId?: string;
  readonly workflow: unknown;
  readonly createdAt: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  /** Wall time of the run in milliseconds. */
  readonly durationMs: number;
  readonly outputs: Readonly<Record<string, NodeOutputRecord>>;
  readonly error?: { readonly node?: string; readonly nodeType?: string; readonly message: string };
  readonly executed: readonly string[];
  readonly cached: readonly string[];
}

/**
 * Finished jobs, newest last, kept in one JSON file written atomically after every job so a restart
 * (or a crash mid-write) never loses what had finished.
 */
export class HistoryStore {
  #entries = new Map<string, HistoryEntry>();
  #writing: Promise<void> = Promise.resolve();

  constructor(
    readonly file: string,
    readonly maxEntries = 1000,
  ) {}

  async load(): Promise<this> {
    const text = await readTextIfPresent(this.file);
    if (text === undefined) return this;
    try {
      const parsed = JSON.parse(text) as { entries?: HistoryEntry[] };
      for (const entry of parsed.entries ?? []) this.#entries.set(entry.id, entry);
    } catch (error) {
      throw new Error(`history file ${this.file} is not valid JSON (${(error as Error).message}); move it aside to start afresh`);
    }
    return this;
  }

  list(): HistoryEntry[] {
    return [...this.#entries.values()];
  }

  get(id: string): HistoryEntry | undefined {
    return this.#entries.get(id);
  }

  async add(entry: HistoryEntry): Promise<void> {
    this.#entries.set(entry.id, entry);
    while (this.#entries.size > this.maxEntries) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
    await this.#persist();
  }

  async delete(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.#entries.delete(id);
    await this.#persist();
  }

  async clear(): Promise<void> {
    this.#entries.clear();
    await this.#persist();
  }

  #persist(): Promise<void> {
    // Serialise writes so an older snapshot never lands after a newer one.
    const snapshot = JSON.stringify({ version: 1, entries: this.list() });
    this.#writing = this.#writing.catch(() => {}).then(() => writeFileAtomic(this.file, snapshot));
    return this.#writing;
  }
}
