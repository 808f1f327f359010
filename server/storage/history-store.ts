/**
 * History as a durable log: one file per job under DATA/history/, written when the job is accepted (status
 * "queued") and replaced when it ends. Why a file per job:
 * - each write touches only that job's record, so recording a job costs the same with 10 or 100,000 in history
 *   (the old single history.json was re-serialised whole after every job, and past V8's longest string it
 *   stopped saving anything);
 * - the file name says the creation order, the job id and whether it finished (see history-file-name.ts), so
 *   the index is built from one readdir, never by opening every record, and a page of the list opens only the
 *   page's files;
 * - every write is atomic (temp file + rename), so a SIGKILL leaves a job's old record or its new one, never a
 *   torn file; the next start marks records still "queued" as cut off;
 * - no database: a native module would need install scripts, and plain files are easy to inspect and back up.
 * Memory holds the index ({id, file, stamp, status} per job) and a few recently finished entries (so
 * `get` answers synchronously for a job that just ended), never all workflows.
 */
import { mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import { consoleLog, type ServerLog } from "../logging/server-log.ts";
import { writeFileAtomic } from "./atomic-write.ts";
import { parseRecordFileName, recordFileName, type RecordStatus } from "./history-file-name.ts";
import {
  type BatchRef,
  DEFAULT_MAX_RECORD_BYTES,
  type HistoryEntry,
  historyEntrySchema,
  type HistoryRecord,
  parseRecord,
  type QueuedRecord,
  serializeBounded,
} from "./history-record.ts";
import { readTextIfPresent } from "./read-text-if-present.ts";

export type { HistoryEntry, QueuedRecord } from "./history-record.ts";

export const CUT_OFF_MESSAGE = "cut off: the server stopped before this job finished";

export interface HistoryStoreOptions {
  /** Records kept at most; the oldest finished ones go first (default 1000). */
  readonly maxEntries?: number;
  /** A record's largest JSON; a bigger one is cut down (default 8 MB, see history-record.ts). */
  readonly maxRecordBytes?: number;
  /** Where the records live (default: a `history` folder next to the old history.json). */
  readonly dir?: string;
  readonly log?: ServerLog;
  /** How a record's file is read (default: readFile); lets a caller see which files a page opens. */
  readonly readRecordFile?: (file: string) => Promise<string>;
}

export interface HistoryPage {
  readonly entries: HistoryEntry[];
  /** Finished jobs in history, across all pages. */
  readonly total: number;
}

interface IndexEntry {
  readonly id: string;
  readonly file: string;
  readonly stamp: number;
  readonly status: RecordStatus;
}

/** Recently finished entries kept for `get`: bounded by count and by their JSON's size. */
const RECENT_COUNT = 32;
const RECENT_BYTES = 32 * 1024 * 1024;
/** Files opened at once for one page. */
const READ_CONCURRENCY = 16;

export class HistoryStore {
  readonly dir: string;
  readonly maxEntries: number;
  readonly maxRecordBytes: number;
  readonly #log: ServerLog;
  readonly #readRecordFile: (file: string) => Promise<string>;
  /** Oldest first, by stamp. */
  readonly #order: IndexEntry[] = [];
  readonly #byId = new Map<string, IndexEntry>();
  /** One chain of writes per job, so a job's records land in the order they were asked for. */
  readonly #chains = new Map<string, Promise<void>>();
  readonly #recent = new Map<string, { entry: HistoryEntry; bytes: number }>();
  /**
   * Finished entries whose write is under way: a client told over the WebSocket that its job ended asks for
   * it at once, and must find it (the index changes only once the file is there).
   */
  readonly #finishing = new Map<string, HistoryEntry>();
  #recentBytes = 0;
  #lastStamp = 0;

  /** `file`: the old single-file history (DATA/history.json), moved into the folder once by `load`. */
  constructor(
    readonly file: string,
    options: HistoryStoreOptions = {},
  ) {
    this.dir = options.dir ?? path.join(path.dirname(file), "history");
    this.maxEntries = options.maxEntries ?? 1000;
    this.maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
    this.#log = options.log ?? consoleLog;
    this.#readRecordFile = options.readRecordFile ?? ((file) => readFile(file, "utf8"));
  }

  /**
   * Migrates an old history.json, builds the index from the folder's names, and marks jobs a crash left
   * "queued" as cut off, unless `keepUnfinished` (a Redis queue: its jobs outlive the server, and it settles
   * them itself). Nothing here stops a start: a stray or unreadable file is skipped with a warning.
   */
  async load(options: { keepUnfinished?: boolean } = {}): Promise<this> {
    await mkdir(this.dir, { recursive: true });
    await this.#migrate();
    for (const name of (await readdir(this.dir)).sort()) {
      if (name.startsWith(".")) {
        // A temp file of a write cut off by a crash: the record it would have replaced is still there.
        if (name.endsWith(".tmp")) await rm(path.join(this.dir, name), { force: true });
        continue;
      }
      const parsed = parseRecordFileName(name);
      if (!parsed) {
        this.#log.warn(`history: ignored ${path.join(this.dir, name)}: not a record's name (<stamp>-<job id>.<status>.json)`);
        continue;
      }
      const entry: IndexEntry = { id: parsed.id, file: name, stamp: parsed.stamp, status: parsed.status };
      const existing = this.#byId.get(entry.id);
      if (existing) {
        // A crash between writing a job's new record and removing its old one: the finished one wins.
        const keep = existing.status === "queued" ? entry : entry.status === "queued" ? existing : entry;
        const drop = keep === entry ? existing : entry;
        await rm(path.join(this.dir, drop.file), { force: true });
        if (keep === existing) continue;
        this.#remove(existing);
      }
      this.#insert(entry);
      this.#lastStamp = Math.max(this.#lastStamp, entry.stamp);
    }
    if (!options.keepUnfinished) {
      for (const id of this.unfinishedIds()) await this.cutOff(id, CUT_OFF_MESSAGE);
    }
    await this.#prune();
    return this;
  }

  /** Jobs recorded as accepted and not finished. */
  unfinishedIds(): string[] {
    return this.#order.filter((entry) => entry.status === "queued").map((entry) => entry.id);
  }

  /** Whether the job has a finished record (its entry may still have to be read: see `read`). */
  isFinished(id: string): boolean {
    const status = this.#byId.get(id)?.status;
    return status !== undefined && status !== "queued";
  }

  /** A job that just finished, from memory; undefined for one that has not, or ended too long ago (use `read`). */
  get(id: string): HistoryEntry | undefined {
    return this.#finishing.get(id) ?? this.#recent.get(id)?.entry;
  }

  /** A finished job's entry from its file; undefined when there is none (not finished, deleted or never there). */
  async read(id: string): Promise<HistoryEntry | undefined> {
    const known = this.get(id);
    if (known) return known;
    const entry = this.#byId.get(id);
    if (!entry || entry.status === "queued") return undefined;
    return await this.#readFinished(entry);
  }

  /** Finished jobs, newest first: `maxItems` of them after skipping `offset`. Opens only the page's files. */
  async page(offset: number, maxItems: number): Promise<HistoryPage> {
    const picked: IndexEntry[] = [];
    let total = 0;
    for (let index = this.#order.length - 1; index >= 0; index--) {
      const entry = this.#order[index];
      if (entry.status === "queued" && !this.#finishing.has(entry.id)) continue;
      if (total >= offset && picked.length < maxItems) picked.push(entry);
      total++;
    }
    const entries: HistoryEntry[] = [];
    for (let start = 0; start < picked.length; start += READ_CONCURRENCY) {
      const read = await Promise.all(picked.slice(start, start + READ_CONCURRENCY).map((entry) => this.get(entry.id) ?? this.#readFinished(entry)));
      for (const entry of read) if (entry) entries.push(entry);
    }
    return { entries, total };
  }

  /** Records a job the queue accepted; a job that already has a record (it finished first) is left alone. */
  accepted(job: { readonly id: string; readonly clientId?: string; readonly workflow: unknown; readonly createdAt: string; readonly batch?: BatchRef }): Promise<void> {
    return this.#serial(job.id, async () => {
      if (this.#byId.has(job.id)) return;
      const record: QueuedRecord = {
        id: job.id,
        status: "queued",
        clientId: job.clientId,
        workflow: job.workflow,
        createdAt: job.createdAt,
        ...(job.batch ? { batch: job.batch } : {}),
      };
      await this.#write(record, this.#nextStamp(job.createdAt));
    }).then(() => this.#prune());
  }

  /** Records a finished job, replacing its "queued" record when there is one. */
  add(entry: HistoryEntry): Promise<void> {
    let serialized: ReturnType<typeof serializeBounded>;
    try {
      serialized = serializeBounded(entry, this.maxRecordBytes);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const kept = serialized.record as HistoryEntry;
    this.#finishing.set(entry.id, kept);
    return this.#serial(entry.id, async () => {
      try {
        await this.#write(kept, this.#byId.get(entry.id)?.stamp ?? this.#nextStamp(entry.createdAt), serialized.text);
      } finally {
        if (this.#finishing.get(entry.id) === kept) this.#finishing.delete(entry.id);
      }
    }).then(() => this.#prune());
  }

  /** Ends a job recorded as queued with status "error" and `message` (a crash, or a job its queue lost). */
  cutOff(id: string, message: string): Promise<void> {
    return this.#serial(id, async () => {
      const entry = this.#byId.get(id);
      if (entry?.status !== "queued") return;
      let queued: HistoryRecord | undefined;
      let problem = "";
      try {
        queued = parseRecord(await this.#readRecordFile(path.join(this.dir, entry.file)));
      } catch (error) {
        problem = ` (its queued record could not be read: ${(error as Error).message})`;
      }
      const createdAt = queued?.createdAt ?? new Date(entry.stamp).toISOString();
      await this.#write(
        {
          id,
          status: "error",
          clientId: queued?.clientId,
          workflow: queued?.workflow ?? null,
          createdAt,
          startedAt: createdAt,
          finishedAt: createdAt,
          durationMs: 0,
          outputs: {},
          error: { message: message + problem },
          executed: [],
          cached: [],
          ...(queued?.omitted ? { omitted: queued.omitted } : {}),
          ...(queued?.batch ? { batch: queued.batch } : {}),
        },
        entry.stamp,
      );
    });
  }

  /** Deletes the records of jobs removed from the queue before they ran (cancelled); finished jobs' stay. */
  async discardQueued(ids: readonly string[]): Promise<void> {
    await Promise.all(
      ids.map((id) =>
        this.#serial(id, async () => {
          const entry = this.#byId.get(id);
          if (entry?.status === "queued") await this.#unlink(entry);
        }),
      ),
    );
  }

  /** Deletes finished jobs' records; a job still queued keeps its record. */
  async delete(ids: readonly string[]): Promise<void> {
    await Promise.all(
      ids.map((id) =>
        this.#serial(id, async () => {
          const entry = this.#byId.get(id);
          if (entry && entry.status !== "queued") await this.#unlink(entry);
        }),
      ),
    );
  }

  /** Deletes every finished job's record. */
  async clear(): Promise<void> {
    await this.delete(this.#order.filter((entry) => entry.status !== "queued").map((entry) => entry.id));
  }

  #serial(id: string, work: () => Promise<void>): Promise<void> {
    const next = (this.#chains.get(id) ?? Promise.resolve()).catch(() => {}).then(work);
    this.#chains.set(id, next);
    const forget = () => {
      if (this.#chains.get(id) === next) this.#chains.delete(id);
    };
    next.then(forget, forget);
    return next;
  }

  /** Stamps are unique and rising within the folder, so names never collide and readdir order is creation order. */
  #nextStamp(createdAt: string): number {
    const wanted = Date.parse(createdAt);
    this.#lastStamp = Math.max(Number.isFinite(wanted) ? wanted : Date.now(), this.#lastStamp + 1);
    return this.#lastStamp;
  }

  /** Writes the job's record under the given stamp and removes the file it replaces (one with another status). */
  async #write(record: HistoryRecord, stamp: number, serialized?: string): Promise<void> {
    const { text, record: kept } = serialized === undefined ? serializeBounded(record, this.maxRecordBytes) : { text: serialized, record };
    const file = recordFileName(stamp, record.id, record.status);
    await writeFileAtomic(path.join(this.dir, file), text);
    const previous = this.#byId.get(record.id);
    if (previous) this.#remove(previous);
    this.#insert({ id: record.id, file, stamp, status: record.status });
    if (previous && previous.file !== file) await rm(path.join(this.dir, previous.file), { force: true });
    if (kept.status !== "queued") this.#remember(kept, text.length);
  }

  async #readFinished(entry: IndexEntry): Promise<HistoryEntry | undefined> {
    let text: string;
    try {
      text = await this.#readRecordFile(path.join(this.dir, entry.file));
    } catch (error) {
      // Deleted or replaced while this page was being read: it is simply not on this page.
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      return unreadableEntry(entry, (error as Error).message);
    }
    try {
      const record = parseRecord(text);
      if (record.status === "queued" || record.id !== entry.id) {
        return unreadableEntry(entry, `the file holds ${record.status === "queued" ? "a queued record" : `job ${record.id}`}`);
      }
      return record;
    } catch (error) {
      return unreadableEntry(entry, (error as Error).message);
    }
  }

  #remember(entry: HistoryEntry, bytes: number): void {
    this.#forget(entry.id);
    this.#recent.set(entry.id, { entry, bytes });
    this.#recentBytes += bytes;
    for (const [id] of this.#recent) {
      if (this.#recent.size <= 1 || (this.#recent.size <= RECENT_COUNT && this.#recentBytes <= RECENT_BYTES)) break;
      this.#forget(id);
    }
  }

  #forget(id: string): void {
    const held = this.#recent.get(id);
    if (!held) return;
    this.#recentBytes -= held.bytes;
    this.#recent.delete(id);
  }

  #insert(entry: IndexEntry): void {
    // Nearly always the newest: search from the end.
    let index = this.#order.length;
    while (index > 0 && this.#order[index - 1].stamp > entry.stamp) index--;
    this.#order.splice(index, 0, entry);
    this.#byId.set(entry.id, entry);
  }

  #remove(entry: IndexEntry): void {
    // The order is sorted by stamp: a binary search finds the first entry of this stamp (unique but for files
    // copied in by hand), and the entry is among those that share it.
    let low = 0;
    let high = this.#order.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#order[middle].stamp < entry.stamp) low = middle + 1;
      else high = middle;
    }
    for (let index = low; index < this.#order.length && this.#order[index].stamp === entry.stamp; index++) {
      if (this.#order[index] === entry) {
        this.#order.splice(index, 1);
        break;
      }
    }
    if (this.#byId.get(entry.id) === entry) this.#byId.delete(entry.id);
    this.#forget(entry.id);
  }

  async #unlink(entry: IndexEntry): Promise<void> {
    this.#remove(entry);
    await rm(path.join(this.dir, entry.file), { force: true });
  }

  /** Deletes the oldest finished records past maxEntries (jobs still queued are never dropped). */
  async #prune(): Promise<void> {
    const excess = this.#order.length - this.maxEntries;
    if (excess <= 0) return;
    const victims: IndexEntry[] = [];
    for (const entry of this.#order) {
      if (victims.length >= excess) break;
      if (entry.status !== "queued") victims.push(entry);
    }
    await Promise.all(
      victims.map((victim) =>
        this.#serial(victim.id, async () => {
          if (this.#byId.get(victim.id) === victim) await this.#unlink(victim);
        }),
      ),
    );
  }

  /** Moves an old single-file history (newest last) into per-job files once, then renames it to history.json.migrated. */
  async #migrate(): Promise<void> {
    let text: string | undefined;
    let entries: unknown[];
    try {
      text = await readTextIfPresent(this.file);
      if (text === undefined) return;
      const parsed = JSON.parse(text) as { entries?: unknown };
      if (!Array.isArray(parsed?.entries)) throw new Error("it has no entries list");
      entries = parsed.entries;
    } catch (error) {
      const aside = `${this.file}.unreadable`;
      await rename(this.file, aside);
      this.#log.warn(`history: ${this.file} could not be read (${(error as Error).message}); moved it to ${aside} and started afresh`);
      return;
    }
    // Stamps from the creation times, kept rising in the file's order, so the old order survives; the same
    // input gives the same names, so a migration cut off by a crash is simply done again.
    let stamp = 0;
    let moved = 0;
    let skipped = 0;
    for (const raw of entries.slice(-this.maxEntries)) {
      const entry = historyEntrySchema.safeParse(raw);
      if (!entry.success) {
        skipped++;
        continue;
      }
      const created = Date.parse(entry.data.createdAt);
      stamp = Math.max(Number.isFinite(created) ? created : 0, stamp + 1);
      const { text: json } = serializeBounded(entry.data, this.maxRecordBytes);
      await writeFileAtomic(path.join(this.dir, recordFileName(stamp, entry.data.id, entry.data.status)), json);
      moved++;
    }
    await rename(this.file, `${this.file}.migrated`);
    const dropped = skipped ? `; left out ${skipped} ${skipped === 1 ? "item that is not a history entry" : "items that are not history entries"}` : "";
    this.#log.info(`history: moved ${moved} job(s) from ${this.file} to ${this.dir} (the old file is kept as history.json.migrated)${dropped}`);
  }
}

/** What a page shows for a record that cannot be read: the job is listed, with the reason, instead of a 500. */
function unreadableEntry(entry: IndexEntry, reason: string): HistoryEntry {
  const at = new Date(entry.stamp).toISOString();
  return {
    id: entry.id,
    status: "error",
    workflow: null,
    createdAt: at,
    startedAt: at,
    finishedAt: at,
    durationMs: 0,
    outputs: {},
    error: { message: `this job's history record (history/${entry.file}) could not be read: ${reason}` },
    executed: [],
    cached: [],
  };
}
