import type { NodeOutputRecord } from "./execution-event.ts";

export interface CachedNode {
  readonly outputs: Readonly<Record<string, unknown>>;
  readonly record: NodeOutputRecord;
  readonly bytes: number;
}

/**
 * Node outputs by cache key, least recently used first out, bounded by an estimate of the bytes they hold
 * (pictures dominate, so typed arrays are counted and the rest is a small constant).
 */
export class OutputCache {
  readonly #entries = new Map<string, CachedNode>();
  #bytes = 0;

  constructor(readonly maxBytes: number) {}

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get(key: string): CachedNode | undefined {
    const entry = this.#entries.get(key);
    if (entry) {
      // Re-insert to mark as most recently used.
      this.#entries.delete(key);
      this.#entries.set(key, entry);
    }
    return entry;
  }

  set(key: string, outputs: Readonly<Record<string, unknown>>, record: NodeOutputRecord): void {
    const bytes = estimateBytes(outputs);
    if (bytes > this.maxBytes) return;
    this.delete(key);
    this.#entries.set(key, { outputs, record, bytes });
    this.#bytes += bytes;
    for (const [oldest, entry] of this.#entries) {
      if (this.#bytes <= this.maxBytes) break;
      this.#entries.delete(oldest);
      this.#bytes -= entry.bytes;
    }
  }

  delete(key: string): void {
    const entry = this.#entries.get(key);
    if (entry) {
      this.#entries.delete(key);
      this.#bytes -= entry.bytes;
    }
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }
}

function estimateBytes(value: unknown, depth = 0): number {
  if (ArrayBuffer.isView(value)) return value.byteLength;
  if (depth > 4 || value === null || typeof value !== "object") return 16;
  let total = 64;
  for (const item of Array.isArray(value) ? value : Object.values(value)) total += estimateBytes(item, depth + 1);
  return total;
}
