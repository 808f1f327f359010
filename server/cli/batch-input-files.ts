import type { ImageRef, InputFileLookup, NodeStorage } from "../../nodes/node-definition.ts";
import type { DataFolders } from "../storage/data-folders.ts";

/**
 * The data folders of a `run --batch`, plus the batch's own pictures: each item names its file by absolute
 * path, and exactly those paths are let through (every other name goes through the input folders' rules,
 * which refuse absolute paths). Absolute paths keep photos/cat.png and masks/cat.png apart in the
 * executor's cache keys, which a bare "cat.png" would not.
 */
export class BatchInputFiles implements NodeStorage, InputFileLookup {
  readonly #folders: DataFolders;
  readonly #files: ReadonlySet<string>;

  constructor(folders: DataFolders, files: Iterable<string>) {
    this.#folders = folders;
    this.#files = new Set(files);
  }

  get inputFolders(): readonly string[] {
    return this.#folders.inputFolders;
  }

  inputPath(filename: string): string {
    return this.#files.has(filename) ? filename : this.#folders.inputPath(filename);
  }

  writeImage(bytes: Uint8Array, options: { prefix: string; extension: string; type: "output" | "temp" }): Promise<ImageRef> {
    return this.#folders.writeImage(bytes, options);
  }
}
