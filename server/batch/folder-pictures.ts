/**
 * The pictures in one folder of a batch: its files whose extension is a format sharp decodes, not its
 * subfolders (a batch is one folder deep) nor hidden files. Other files are listed as skipped, so the
 * caller can say what it left out.
 */
import { opendir, realpath } from "node:fs/promises";
import path from "node:path";

export const PICTURE_EXTENSIONS = [".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".gif", ".avif"] as const;

export interface FolderPicture {
  /** The file's name in its folder. */
  readonly name: string;
  /** The name without its extension: what pairs it with the pictures of the other folders. */
  readonly stem: string;
  readonly path: string;
}

export interface FolderListing {
  readonly pictures: readonly FolderPicture[];
  /** Files that are not pictures by their extension, and (when links are refused) nothing else. */
  readonly skipped: readonly string[];
}

export interface ListOptions {
  /** How the folder is named in messages (what the user wrote). */
  readonly label: string;
  /** Entries read at most; a folder with more is refused rather than listed for minutes. */
  readonly maxEntries: number;
  /**
   * Where the folder must really lie (symbolic links resolved), and no entry may be a link: for folders a
   * remote caller names, so a link planted in the input folder cannot lead a batch elsewhere.
   */
  readonly confineTo?: string;
}

export class BatchFolderError extends Error {
  constructor(
    readonly label: string,
    message: string,
  ) {
    super(message);
    this.name = "BatchFolderError";
  }
}

export async function listFolderPictures(folder: string, options: ListOptions): Promise<FolderListing> {
  const { label } = options;
  if (options.confineTo !== undefined) {
    let real: string;
    try {
      real = await realpath(folder);
    } catch (error) {
      throw new BatchFolderError(label, `${label} ${whyUnreadable(error)}`);
    }
    const root = await realpath(options.confineTo);
    if (real !== root && !real.startsWith(root + path.sep)) {
      throw new BatchFolderError(label, `${label} leads outside the input folder (through a symbolic link); a batch reads only folders inside it`);
    }
  }
  let dir;
  try {
    dir = await opendir(folder);
  } catch (error) {
    throw new BatchFolderError(label, `${label} ${whyUnreadable(error)}`);
  }
  const pictures: FolderPicture[] = [];
  const skipped: string[] = [];
  let entries = 0;
  try {
    for await (const entry of dir) {
      if (++entries > options.maxEntries) {
        throw new BatchFolderError(label, `${label} holds more than ${options.maxEntries.toLocaleString("en-US")} entries; split it into smaller folders`);
      }
      if (entry.name.startsWith(".")) continue;
      if (entry.isSymbolicLink() && options.confineTo !== undefined) {
        throw new BatchFolderError(label, `${label}/${entry.name} is a symbolic link; a batch reads only files uploaded into the input folder`);
      }
      if (entry.isDirectory()) continue;
      const extension = path.extname(entry.name).toLowerCase();
      if (!(entry.isFile() || entry.isSymbolicLink()) || !(PICTURE_EXTENSIONS as readonly string[]).includes(extension)) {
        skipped.push(entry.name);
        continue;
      }
      pictures.push({ name: entry.name, stem: entry.name.slice(0, entry.name.length - extension.length), path: path.join(folder, entry.name) });
    }
  } finally {
    // The loop closes the handle when it ends on its own; a throw from inside it may not have.
    await dir.close().catch(() => {});
  }
  return { pictures, skipped: skipped.sort() };
}

function whyUnreadable(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ENOENT" ? "does not exist" : code === "ENOTDIR" ? "is a file, not a folder" : `cannot be read (${code ?? (error as Error).message})`;
}
