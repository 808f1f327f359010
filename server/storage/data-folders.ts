import { existsSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import type { ImageRef, InputFileLookup, NodeStorage } from "../../nodes/node-definition.ts";
import { writeFileAtomic, writeNewFileAtomic } from "./atomic-write.ts";
import { resolveInside } from "./safe-path.ts";

export type FolderType = "input" | "output" | "temp";

const MAX_NAME_ATTEMPTS = 1000;

/**
 * The server's data folder: input/ (uploads and images LoadImage reads), output/ (what SaveImage writes),
 * temp/ (previews), workflows/ (the user's saved workflows) and history.json.
 */
export class DataFolders implements NodeStorage, InputFileLookup {
  readonly root: string;
  readonly input: string;
  readonly output: string;
  readonly temp: string;
  readonly workflows: string;
  readonly historyFile: string;
  readonly settingsFile: string;
  /** Read-only folders searched after input/ (the shipped example images, a CLI workflow's own folder). */
  readonly extraInputRoots: readonly string[];
  /** Per folder: previews in temp/ do not shift the numbers of saved outputs, and each folder counts from 1. */
  readonly #written = { output: 0, temp: 0 };

  constructor(root: string, options: { output?: string; temp?: string; extraInputRoots?: readonly string[] } = {}) {
    this.root = path.resolve(root);
    this.input = path.join(this.root, "input");
    this.output = options.output ? path.resolve(options.output) : path.join(this.root, "output");
    this.extraInputRoots = (options.extraInputRoots ?? []).map((folder) => path.resolve(folder));
    this.temp = options.temp ? path.resolve(options.temp) : path.join(this.root, "temp");
    this.workflows = path.join(this.root, "workflows");
    this.historyFile = path.join(this.root, "history.json");
    this.settingsFile = path.join(this.root, "settings.json");
  }

  async create(): Promise<this> {
    for (const folder of [this.input, this.output, this.temp, this.workflows]) {
      await mkdir(folder, { recursive: true });
    }
    return this;
  }

  /** Empties temp/ (previews of earlier runs), as a server does when it starts; history never points there for long. */
  async clearTemp(): Promise<void> {
    await rm(this.temp, { recursive: true, force: true });
    await mkdir(this.temp, { recursive: true });
  }

  folder(type: FolderType): string {
    return type === "input" ? this.input : type === "output" ? this.output : this.temp;
  }

  /** Path of a file the user named, kept inside its folder. */
  resolve(type: FolderType, filename: string, subfolder = ""): string {
    const base = subfolder ? resolveInside(this.folder(type), subfolder, "subfolder") : this.folder(type);
    return resolveInside(base, filename, "filename");
  }

  /** Where inputPath looks, in order. */
  get inputFolders(): readonly string[] {
    return [this.input, ...this.extraInputRoots];
  }

  inputPath(filename: string): string {
    const own = this.resolve("input", filename);
    if (existsSync(own)) return own;
    for (const root of this.extraInputRoots) {
      const candidate = resolveInside(root, filename, "filename");
      if (existsSync(candidate)) return candidate;
    }
    return own;
  }

  async writeImage(
    bytes: Uint8Array,
    options: { prefix: string; extension: string; type: "output" | "temp" },
  ): Promise<ImageRef> {
    const prefix = options.prefix.replace(/[^A-Za-z0-9_-]+/g, "_").slice(0, 64) || "maskflow";
    const extension = options.extension.replace(/[^A-Za-z0-9]+/g, "") || "bin";
    // Time + counter keeps names unique and sortable without listing the folder on every save; a name another
    // process took in the same second (two runs into one --out) moves this file to the next number.
    const stamp = new Date().toISOString().replace(/[-:T]/g, "").replace(/\..*/, "");
    for (let attempt = 0; attempt < MAX_NAME_ATTEMPTS; attempt++) {
      const filename = `${prefix}_${stamp}_${String(++this.#written[options.type]).padStart(5, "0")}.${extension}`;
      if (await writeNewFileAtomic(path.join(this.folder(options.type), filename), bytes)) return { filename, subfolder: "", type: options.type };
    }
    throw new Error(`no free file name for "${prefix}_${stamp}_…" in ${this.folder(options.type)} after ${MAX_NAME_ATTEMPTS} tries`);
  }

  /** Writes to a fixed name (a job's outputs named by job id, so a retried job overwrites, never duplicates). */
  async writeNamed(type: FolderType, filename: string, bytes: Uint8Array): Promise<ImageRef> {
    await writeFileAtomic(this.resolve(type, filename), bytes);
    return { filename, subfolder: "", type };
  }
}
