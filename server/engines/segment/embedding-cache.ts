/**
 * Image embeddings kept between clicks: computing one is the encoder's whole cost (MobileSAM's a few hundred
 * milliseconds on a CPU, SAM ViT-H's seconds), each click after it only runs the small decoder. Keyed by the
 * model folder and a hash of the picture's pixels, least recently used first out, bounded by bytes. An embedding
 * being computed is shared by everyone who asks for it meanwhile.
 */

export interface Embedding {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/** 16 MobileSAM/SAM embeddings (1×256×64×64 floats, 4 MiB each). */
export const DEFAULT_EMBEDDING_CACHE_BYTES = 64 * 1024 * 1024;

interface Entry {
  readonly promise: Promise<Embedding>;
  bytes: number;
}

export class EmbeddingCache {
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;
  hits = 0;
  misses = 0;

  constructor(readonly maxBytes: number = DEFAULT_EMBEDDING_CACHE_BYTES) {}

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The embedding under `key`, computing it once; a failed computation is not kept. Says whether it was there. */
  get(key: string, compute: () => Promise<Embedding>): { embedding: Promise<Embedding>; cached: boolean } {
    const entry = this.#entries.get(key);
    if (entry) {
      this.hits++;
      // Map order is insertion order: re-inserting makes this the most recently used.
      this.#entries.delete(key);
      this.#entries.set(key, entry);
      return { embedding: entry.promise, cached: true };
    }
    this.misses++;
    const created: Entry = { promise: compute(), bytes: 0 };
    this.#entries.set(key, created);
    created.promise.then(
      (embedding) => {
        if (this.#entries.get(key) !== created) return;
        created.bytes = embedding.data.byteLength;
        this.#bytes += created.bytes;
        this.#evict();
      },
      () => {
        if (this.#entries.get(key) === created) this.#entries.delete(key);
      },
    );
    return { embedding: created.promise, cached: false };
  }

  /** Drops every embedding (of one model folder, when given as a key prefix). */
  clear(prefix = ""): void {
    for (const [key, entry] of this.#entries) {
      if (!key.startsWith(prefix)) continue;
      this.#bytes -= entry.bytes;
      this.#entries.delete(key);
    }
  }

  #evict(): void {
    for (const [key, entry] of this.#entries) {
      if (this.#bytes <= this.maxBytes || this.#entries.size <= 1) return;
      if (entry.bytes === 0) continue; // still being computed: someone waits for it
      this.#bytes -= entry.bytes;
      this.#entries.delete(key);
    }
  }
}
