/**
 * A fixed number of places for requests that are being read, fetched or decoded before they reach the
 * queue. The queue's own limit only counts jobs once they are queued; until then a Segmind request may
 * hold its 60 MB body, two downloads and their decoded bytes, so without this any number of them could
 * be in that state at once. One more than the limit is a 429 with Retry-After, shaped like the queue's.
 */
import { HttpError } from "../http-error.ts";
import { retryAfterSeconds } from "../../queue/queue-limits.ts";

/** How many recent preparation times the Retry-After estimate looks at. */
const RECENT = 20;

export class PreparationSlots {
  readonly #holders = new Map<object, number>();
  #recentMs: number[] = [];

  constructor(
    readonly limit: number,
    /** What is being prepared, for the 429's message ("Segmind requests"). */
    private readonly what: string,
  ) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`the limit of ${what} being prepared must be a whole number of at least 1, not ${limit}`);
  }

  get inUse(): number {
    return this.#holders.size;
  }

  /** Takes a place for `holder`, or throws the 429 when all are taken. */
  take(holder: object): void {
    if (this.#holders.has(holder)) return;
    if (this.#holders.size >= this.limit) {
      // A place frees when one of those in progress is done: about one recent preparation from now.
      const retryAfter = retryAfterSeconds(1, this.#recentMs);
      throw new HttpError(
        429,
        "too_many_preparing",
        `${this.limit} ${this.what} are already being fetched or decoded (the limit); try again in about ${retryAfter} s`,
        { maxPreparing: this.limit },
        { "Retry-After": String(retryAfter) },
      );
    }
    this.#holders.set(holder, Date.now());
  }

  /** Gives the place back; safe to call more than once and for a holder that never had one. */
  release(holder: object): void {
    const since = this.#holders.get(holder);
    if (since === undefined) return;
    this.#holders.delete(holder);
    this.#recentMs = [...this.#recentMs.slice(1 - RECENT), Date.now() - since];
  }
}
