/**
 * The file names a LoadImage combo offers: what this browser uploaded or loaded graphs refer to
 * (newest first), then every picture the server has in its input folders (GET /api/files).
 */
const KEY = "maskflow.inputFiles";
const MAX = 200;

export class ImageChoices {
  #names: string[];
  #onServer: string[] = [];

  constructor() {
    try {
      const stored = JSON.parse(localStorage.getItem(KEY) ?? "[]") as unknown;
      this.#names = Array.isArray(stored) ? stored.filter((name): name is string => typeof name === "string") : [];
    } catch {
      this.#names = [];
    }
  }

  remember(name: string): void {
    if (!name) return;
    this.#names = [name, ...this.#names.filter((known) => known !== name)].slice(0, MAX);
    localStorage.setItem(KEY, JSON.stringify(this.#names));
  }

  /** Fetches the server's input pictures; a failure keeps the last list (the server may be away). */
  async refresh(fetchList: () => Promise<string[]>): Promise<void> {
    try {
      this.#onServer = await fetchList();
    } catch {
      // keep what we had
    }
  }

  list(): string[] {
    return [...new Set([...this.#names, ...this.#onServer])];
  }
}
