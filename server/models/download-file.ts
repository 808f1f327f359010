import { open, rename, rm, stat } from "node:fs/promises";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { FileDigest } from "./file-digest.ts";
import { type HubClient, type HubFile, describeNetworkError, sleep } from "./hub-client.ts";
import { FileVerificationError, HubError, HubUnreachableError } from "./hub-errors.ts";

export interface DownloadFileOptions {
  readonly repo: string;
  readonly revision: string;
  /** Called as bytes arrive, with the total on disk for this file (resumed bytes included). */
  readonly onBytes?: (bytesOnDisk: number) => void;
  readonly signal?: AbortSignal;
  /** A connection that sends nothing for this long is dropped and retried. */
  readonly idleTimeoutMs?: number;
}

/** A failure that a new attempt may not repeat (a dropped connection, a refused resume). */
class TransientDownloadError extends Error {}

/**
 * Downloads one hub file to `destination`, through `destination.part` so that an interrupted download
 * resumes where it stopped (HTTP Range) and a reader never sees a half-written or unverified file.
 * Returns the file's sha256.
 */
export async function downloadFile(client: HubClient, file: HubFile, destination: string, options: DownloadFileOptions): Promise<string> {
  const part = `${destination}.part`;
  await mkdir(path.dirname(destination), { recursive: true });
  // A file whose bytes do not match the hub's digest is removed and fetched once more from its start: a transfer
  // corrupted on the way (or a stale partial file) is fixed by that; a second mismatch is not a blip and is reported.
  let refetches = 1;
  for (let attempt = 1; ; attempt++) {
    try {
      const sha256 = await downloadOnce(client, file, part, options);
      await rename(part, destination);
      return sha256;
    } catch (error) {
      if (error instanceof FileVerificationError && !options.signal?.aborted) {
        if (refetches === 0) throw new FileVerificationError(file.path, error.message.replace("; the file was removed", "; the file was removed after a second fetch"));
        refetches--;
        const reason = error.message.replace(`${file.path}: `, "").split(";")[0];
        client.notifyRetry({ what: file.path, attempt: 1, delayMs: 0, reason: `${reason}; fetching the file again` });
        attempt = 0;
        continue;
      }
      // A full disk stays full for the next attempt: the caller says how much room the rest needs.
      if ((error as NodeJS.ErrnoException).code === "ENOSPC") throw error;
      if (error instanceof HubError || error instanceof HubUnreachableError || error instanceof FileVerificationError || options.signal?.aborted) throw error;
      const reason = error instanceof TransientDownloadError ? error.message : describeNetworkError(error);
      if (attempt >= client.maxAttempts) {
        throw new Error(`${file.path}: ${reason} (after ${attempt} attempts); the partial download is kept, re-run to resume`);
      }
      const delayMs = client.retryDelay(attempt);
      client.notifyRetry({ what: file.path, attempt, delayMs, reason });
      await sleep(delayMs);
    }
  }
}

async function downloadOnce(client: HubClient, file: HubFile, part: string, options: DownloadFileOptions): Promise<string> {
  let start = await sizeOf(part);
  if (start > file.size) {
    await rm(part, { force: true });
    start = 0;
  }
  let digest = new FileDigest(file.size);
  if (start > 0) await digest.updateFromFile(part);
  options.onBytes?.(start);

  if (start < file.size || file.size === 0) {
    const idle = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, idle.signal]) : idle.signal;
    const idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
    let timer = setTimeout(() => idle.abort(new Error(`no data for ${idleTimeoutMs / 1000} s`)), idleTimeoutMs);
    const resetTimer = () => {
      clearTimeout(timer);
      timer = setTimeout(() => idle.abort(new Error(`no data for ${idleTimeoutMs / 1000} s`)), idleTimeoutMs);
    };
    try {
      const response = await client.download(options.repo, options.revision, file.path, { start, signal });
      if (response.status === 416) {
        await response.body?.cancel();
        await rm(part, { force: true });
        throw new TransientDownloadError("the server refused to resume; starting the file over");
      }
      if (start > 0 && response.status === 206 && contentRangeStart(response.headers.get("content-range")) !== start) {
        await response.body?.cancel();
        await rm(part, { force: true });
        throw new TransientDownloadError("the server resumed at the wrong offset; starting the file over");
      }
      if (start > 0 && response.status !== 206) {
        // The server ignored Range and sends the whole file: start over rather than append a second copy.
        start = 0;
        digest = new FileDigest(file.size);
        options.onBytes?.(0);
      }
      const handle = await open(part, start > 0 ? "a" : "w");
      let onDisk = start;
      try {
        const reader = response.body?.getReader();
        // Ends when the server closes the body, or as soon as it sends more than the announced size.
        while (reader) {
          const { done, value } = await reader.read();
          if (done) break;
          resetTimer();
          onDisk += value.byteLength;
          if (onDisk > file.size) {
            await reader.cancel().catch(() => {});
            break;
          }
          await handle.write(value);
          digest.update(value);
          options.onBytes?.(onDisk);
        }
      } catch (error) {
        throw idle.signal.aborted ? new TransientDownloadError(String((idle.signal.reason as Error).message)) : error;
      } finally {
        await handle.close();
      }
      if (onDisk > file.size) {
        await rm(part, { force: true });
        throw new FileVerificationError(file.path, `${file.path}: the server sent more than the announced ${file.size} bytes; the file was removed, re-run to retry`);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  if (digest.bytes < file.size) {
    throw new TransientDownloadError(`connection closed after ${digest.bytes} of ${file.size} bytes`);
  }
  const { sha256, gitSha1 } = digest.digest();
  const expected = file.sha256 ?? file.gitOid;
  const actual = file.sha256 ? sha256 : gitSha1;
  if (expected && actual !== expected) {
    await rm(part, { force: true });
    throw new FileVerificationError(
      file.path,
      `${file.path}: checksum mismatch (expected ${file.sha256 ? "sha256" : "git oid"} ${expected}, got ${actual}); the file was removed, re-run to retry`,
    );
  }
  return sha256;
}

async function sizeOf(filePath: string): Promise<number> {
  try {
    return (await stat(filePath)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw error;
  }
}

/** "bytes 100-199/200" → 100. */
function contentRangeStart(header: string | null): number | undefined {
  const match = header ? /^bytes\s+(\d+)-/.exec(header) : null;
  return match ? Number(match[1]) : undefined;
}
