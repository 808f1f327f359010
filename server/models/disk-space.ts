/**
 * Room on disk for a pull: checked against the hub's sizes before anything is fetched, and named again
 * when a write runs out of room half-way (another program filled the disk meanwhile).
 */
import { statfs as realStatfs } from "node:fs/promises";
import path from "node:path";
import { formatBytes } from "./format-bytes.ts";

/** The part of fs.statfs a free-space check reads; tests pass their own to play a nearly full disk. */
export type StatFs = (dir: string) => Promise<{ readonly bavail: number; readonly bsize: number }>;

export const defaultStatfs: StatFs = (dir) => realStatfs(dir);

/** Not enough room for a pull; says how much it needs, how much is free and where. */
export class DiskFullError extends Error {
  readonly neededBytes: number;
  readonly freeBytes: number | undefined;
  readonly dir: string;

  constructor(message: string, details: { neededBytes: number; freeBytes: number | undefined; dir: string }) {
    super(message);
    this.name = "DiskFullError";
    this.neededBytes = details.neededBytes;
    this.freeBytes = details.freeBytes;
    this.dir = details.dir;
  }
}

/** Bytes an unprivileged writer may still use on the file system holding `dir` (or its nearest existing parent). */
export async function freeBytesAt(dir: string, statfs: StatFs = defaultStatfs): Promise<number> {
  let current = path.resolve(dir);
  // The model folder may not exist yet: ask about the closest folder that does (bounded by the path's depth).
  for (let depth = 0; depth < 256; depth++) {
    try {
      const info = await statfs(current);
      return info.bavail * info.bsize;
    } catch (error) {
      const parent = path.dirname(current);
      if ((error as NodeJS.ErrnoException).code !== "ENOENT" || parent === current) throw error;
      current = parent;
    }
  }
  throw new Error(`no existing folder above ${dir}`);
}

/** Throws DiskFullError when `neededBytes` more will not fit under `dir`. */
export async function requireFreeSpace(dir: string, neededBytes: number, statfs: StatFs = defaultStatfs): Promise<void> {
  if (neededBytes <= 0) return;
  const free = await freeBytesAt(dir, statfs);
  if (free >= neededBytes) return;
  throw new DiskFullError(
    `not enough disk space for the model: it needs ${formatBytes(neededBytes)} more, and ${formatBytes(free)} is free at ${dir}. ` +
      "Free some space, or set MASKFLOW_MODEL_DIR (or --models) to a disk with room, then pull again.",
    { neededBytes, freeBytes: free, dir },
  );
}

/** The disk filled up during a write: what was fetched so far stays for a later resume. */
export async function diskFullDuringWrite(dir: string, filePath: string, stillNeededBytes: number, statfs: StatFs = defaultStatfs): Promise<DiskFullError> {
  const free = await freeBytesAt(dir, statfs).catch(() => undefined);
  return new DiskFullError(
    `the disk is full (ENOSPC) while writing ${filePath}: ${formatBytes(stillNeededBytes)} still to download, ` +
      `${free === undefined ? "free space unknown" : `${formatBytes(free)} free`} at ${dir}. ` +
      "Free some space and pull again: what was fetched is kept and the pull resumes.",
    { neededBytes: stillNeededBytes, freeBytes: free, dir },
  );
}
