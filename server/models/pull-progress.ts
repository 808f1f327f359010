/**
 * Speed and time left of a download, from the byte counts it reports, and when the next report is due:
 * progress arrives per network chunk (hundreds a second), the editor needs a few a second.
 */

export interface PullProgressOptions {
  /** Milliseconds clock; tests drive their own. */
  readonly now?: () => number;
  /** At most one report per this many milliseconds (250: four a second). */
  readonly intervalMs?: number;
  /** The speed is averaged over the samples of this many last milliseconds. */
  readonly windowMs?: number;
}

export class PullProgressMeter {
  readonly #now: () => number;
  readonly #intervalMs: number;
  readonly #windowMs: number;
  /** [time, bytes] of recent samples, oldest first. */
  #samples: Array<[number, number]> = [];
  #lastReport = Number.NEGATIVE_INFINITY;

  constructor(options: PullProgressOptions = {}) {
    this.#now = options.now ?? (() => Date.now());
    this.#intervalMs = options.intervalMs ?? 250;
    this.#windowMs = options.windowMs ?? 5000;
  }

  /** Records the bytes done so far; a count that went down (a file started over) starts the average afresh. */
  sample(bytes: number): void {
    const now = this.#now();
    const last = this.#samples.at(-1);
    if (last && bytes < last[1]) this.#samples = [];
    this.#samples.push([now, bytes]);
    // Keep one sample older than the window so the average always spans it once the download is that old.
    while (this.#samples.length > 2 && this.#samples[1][0] <= now - this.#windowMs) this.#samples.shift();
  }

  /** Bytes per second over the window; 0 until two samples some time apart exist. */
  bytesPerSecond(): number {
    const first = this.#samples[0];
    const last = this.#samples.at(-1);
    if (!first || !last || last[0] <= first[0]) return 0;
    return Math.max(0, ((last[1] - first[1]) * 1000) / (last[0] - first[0]));
  }

  /** Seconds until `totalBytes` at the current speed; null while the speed is unknown. */
  secondsLeft(totalBytes: number): number | null {
    const speed = this.bytesPerSecond();
    const done = this.#samples.at(-1)?.[1] ?? 0;
    if (speed <= 0) return null;
    return Math.max(0, (totalBytes - done) / speed);
  }

  /** Whether a report may go out now (the interval has passed since the last one); if so, counts it as sent. */
  takeReport(): boolean {
    const now = this.#now();
    if (now - this.#lastReport < this.#intervalMs) return false;
    this.#lastReport = now;
    return true;
  }
}
