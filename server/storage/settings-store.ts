/**
 * The server's settings a user may change while it runs (today: the Segmind API key), kept in
 * `DATA/settings.json`, readable by its owner only, written atomically.
 */
import { readFileSync, statSync } from "node:fs";
import { chmod } from "node:fs/promises";
import { z } from "zod";
import { writeFileAtomic } from "./atomic-write.ts";
import { readTextIfPresent } from "./read-text-if-present.ts";

const settingsSchema = z.strictObject({
  segmindApiKey: z.string().min(1).max(512).optional(),
});

export type Settings = z.infer<typeof settingsSchema>;

export class SettingsStore {
  #settings: Settings = {};
  #seenMtimeMs = 0;

  /**
   * `followDisk`: re-read the file when it changes (a worker sharing the server's data folder sees a key the
   * user sets in the editor without a restart).
   */
  constructor(
    readonly file: string,
    private readonly options: { followDisk?: boolean } = {},
  ) {}

  async load(): Promise<this> {
    const text = await readTextIfPresent(this.file);
    if (text === undefined) return this;
    const parsed = settingsSchema.safeParse(JSON.parse(text));
    if (!parsed.success) {
      throw new Error(`settings file ${this.file} is not valid: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(file)"}: ${i.message}`).join("; ")}`);
    }
    this.#settings = parsed.data;
    return this;
  }

  get segmindApiKey(): string | undefined {
    if (this.options.followDisk) this.#followDisk();
    return this.#settings.segmindApiKey;
  }

  #followDisk(): void {
    try {
      const { mtimeMs } = statSync(this.file);
      if (mtimeMs === this.#seenMtimeMs) return;
      const parsed = settingsSchema.safeParse(JSON.parse(readFileSync(this.file, "utf8")));
      if (parsed.success) {
        this.#settings = parsed.data;
        this.#seenMtimeMs = mtimeMs;
      }
    } catch {
      // Missing or being replaced right now: keep what we had.
    }
  }

  async update(changes: { segmindApiKey?: string | null }): Promise<void> {
    const next: Settings = { ...this.#settings };
    if (changes.segmindApiKey === null || changes.segmindApiKey === "") delete next.segmindApiKey;
    else if (changes.segmindApiKey !== undefined) next.segmindApiKey = changes.segmindApiKey.trim();
    await writeFileAtomic(this.file, JSON.stringify(next, null, 2) + "\n");
    // A key is a secret: only the server's user reads the file.
    await chmod(this.file, 0o600);
    this.#settings = next;
  }
}

/** The Segmind key in force: the one set in the settings, else SEGMIND_API_KEY. */
export function segmindKeyFrom(settings: SettingsStore | undefined): () => string | undefined {
  return () => settings?.segmindApiKey ?? process.env.SEGMIND_API_KEY;
}
