/**
 * A built model is keyed by the checkpoint's content, not its name: the same file under two names is
 * built once, and a file replaced in place is rebuilt. Hashing gigabytes takes seconds, so each file's
 * sha256 is remembered beside the built models, by path, size, mtime and inode.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../../storage/atomic-write.ts";

/** The memo's file in the models folder's .built/ (the checkpoint-build bench keeps it when it clears the builds). */
export const MEMO_FILE = ".content-hashes.json";

interface MemoEntry {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
  readonly sha256: string;
}

async function readMemo(root: string): Promise<Record<string, MemoEntry>> {
  try {
    const value: unknown = JSON.parse(await readFile(path.join(root, MEMO_FILE), "utf8"));
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, MemoEntry>) : {};
  } catch {
    return {};
  }
}

/** sha256 of each file (remembered in `memoRoot`), reporting bytes hashed of the bytes to hash. */
export async function contentHashes(
  files: readonly string[],
  memoRoot: string,
  onProgress?: (hashedBytes: number, totalBytes: number) => void,
  signal?: AbortSignal,
): Promise<string[]> {
  const memo = await readMemo(memoRoot);
  const stats = await Promise.all(files.map((file) => stat(file)));
  const fresh = (index: number): string | undefined => {
    const entry = memo[path.resolve(files[index])];
    const info = stats[index];
    return entry && entry.size === info.size && entry.mtimeMs === info.mtimeMs && entry.ino === info.ino ? entry.sha256 : undefined;
  };
  const totalBytes = stats.reduce((sum, info, index) => sum + (fresh(index) ? 0 : info.size), 0);
  let hashedBytes = 0;
  const hashes: string[] = [];
  let changed = false;
  for (const [index, file] of files.entries()) {
    const known = fresh(index);
    if (known) {
      hashes.push(known);
      continue;
    }
    const hash = createHash("sha256");
    for await (const chunk of createReadStream(file, { highWaterMark: 4 << 20 })) {
      signal?.throwIfAborted();
      hash.update(chunk as Buffer);
      hashedBytes += (chunk as Buffer).length;
      onProgress?.(hashedBytes, totalBytes);
    }
    const sha256 = hash.digest("hex");
    hashes.push(sha256);
    const info = stats[index];
    memo[path.resolve(file)] = { size: info.size, mtimeMs: info.mtimeMs, ino: info.ino, sha256 };
    changed = true;
  }
  if (changed) await writeFileAtomic(path.join(memoRoot, MEMO_FILE), JSON.stringify(memo, null, 1) + "\n").catch(() => {});
  return hashes;
}

/**
 * Remembers the sha256 of files whose digest is known another way (a download verified as it arrived), so the next
 * build keys them without reading them again. Each is recorded against the file as it is on disk now.
 */
export async function rememberContentHashes(memoRoot: string, known: ReadonlyArray<{ readonly file: string; readonly sha256: string }>): Promise<void> {
  if (known.length === 0) return;
  const memo = await readMemo(memoRoot);
  for (const { file, sha256 } of known) {
    const info = await stat(file);
    memo[path.resolve(file)] = { size: info.size, mtimeMs: info.mtimeMs, ino: info.ino, sha256 };
  }
  await mkdir(memoRoot, { recursive: true });
  await writeFileAtomic(path.join(memoRoot, MEMO_FILE), JSON.stringify(memo, null, 1) + "\n");
}

/** The built folder's name: the files' contents, in order, and what the builder was asked for. */
export function buildKey(hashes: readonly string[], options: Readonly<Record<string, unknown>>): string {
  return createHash("sha256").update(JSON.stringify({ hashes, options })).digest("hex").slice(0, 24);
}
