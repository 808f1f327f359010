import { rm, stat } from "node:fs/promises";
import path from "node:path";
import { downloadFile } from "./download-file.ts";
import { FileDigest } from "./file-digest.ts";
import type { HubClient, HubFile } from "./hub-client.ts";
import { HubError } from "./hub-errors.ts";
import { MANIFEST_NAME, type ManifestFile, readManifest, writeManifest } from "./model-manifest.ts";
import { isNeededFile, missingRequiredFiles } from "./onnx-layout.ts";

export type PullEvent =
  | { type: "plan"; files: readonly HubFile[]; totalBytes: number; alreadyPresentBytes: number }
  | { type: "file-start"; path: string; size: number }
  | { type: "bytes"; path: string; fileBytes: number; size: number; totalBytes: number }
  | { type: "file-done"; path: string; skipped: boolean };

export interface PullModelOptions {
  readonly client: HubClient;
  readonly repo: string;
  readonly revision: string;
  /** The model's own folder (models/<name>). */
  readonly modelDir: string;
  readonly onEvent?: (event: PullEvent) => void;
  readonly signal?: AbortSignal;
  readonly idleTimeoutMs?: number;
}

export interface PullResult {
  readonly modelDir: string;
  readonly commit: string | null;
  readonly files: readonly ManifestFile[];
  readonly downloadedBytes: number;
}

/**
 * Downloads the ONNX pipeline files of a hub repository into `modelDir`, verifying each against the hub's
 * size and digest, then writes the manifest. Re-running resumes: verified files are kept, partial ones continue.
 */
export async function pullModel(options: PullModelOptions): Promise<PullResult> {
  const { client, repo, revision, modelDir } = options;
  const commit = await client.resolveRevision(repo, revision);
  // Listing at the commit keeps the listing and the downloads on one snapshot even if the branch moves meanwhile.
  const snapshot = commit ?? revision;
  const files = (await client.listFiles(repo, snapshot)).filter((file) => isNeededFile(file.path)).sort((a, b) => a.path.localeCompare(b.path));
  const missing = missingRequiredFiles(files.map((file) => file.path));
  if (missing.length) {
    throw new HubError(404, `${repo}@${revision} is not an ONNX Stable Diffusion export: missing ${missing.join(", ")}`);
  }
  for (const file of files) ensureInside(modelDir, file.path);

  // A previous complete pull of this same snapshot lets unchanged files be trusted by size + recorded sha256.
  const previous = await readManifest(modelDir).catch(() => undefined);
  const recorded = new Map(previous?.files.map((file) => [file.path, file]));
  // Until every file is verified again the folder is incomplete, whatever it was before.
  await rm(path.join(modelDir, MANIFEST_NAME), { force: true });

  const totalBytes = files.reduce((sum, file) => sum + file.size, 0);
  const present = new Map<string, string>();
  for (const file of files) {
    const sha256 = await verifiedExisting(path.join(modelDir, file.path), file, recorded.get(file.path));
    if (sha256) present.set(file.path, sha256);
  }
  let doneBytes = files.filter((file) => present.has(file.path)).reduce((sum, file) => sum + file.size, 0);
  options.onEvent?.({ type: "plan", files, totalBytes, alreadyPresentBytes: doneBytes });

  const manifestFiles: ManifestFile[] = [];
  let downloadedBytes = 0;
  for (const file of files) {
    const existing = present.get(file.path);
    if (existing) {
      manifestFiles.push({ path: file.path, size: file.size, sha256: existing });
      options.onEvent?.({ type: "file-done", path: file.path, skipped: true });
      continue;
    }
    options.onEvent?.({ type: "file-start", path: file.path, size: file.size });
    let resumedAt = -1;
    let fileBytes = 0;
    const sha256 = await downloadFile(client, file, path.join(modelDir, file.path), {
      repo,
      revision: snapshot,
      signal: options.signal,
      idleTimeoutMs: options.idleTimeoutMs,
      onBytes: (bytesOnDisk) => {
        if (resumedAt < 0) resumedAt = bytesOnDisk;
        fileBytes = bytesOnDisk;
        options.onEvent?.({ type: "bytes", path: file.path, fileBytes, size: file.size, totalBytes: doneBytes + fileBytes });
      },
    });
    downloadedBytes += file.size - Math.max(0, resumedAt);
    doneBytes += file.size;
    manifestFiles.push({ path: file.path, size: file.size, sha256 });
    options.onEvent?.({ type: "file-done", path: file.path, skipped: false });
  }

  await writeManifest(modelDir, {
    format: 1,
    repo,
    revision,
    commit,
    endpoint: client.endpoint,
    downloadedAt: new Date().toISOString(),
    files: manifestFiles,
  });
  return { modelDir, commit, files: manifestFiles, downloadedBytes };
}

/** sha256 of a final file already on disk that matches the hub's description, else undefined. */
async function verifiedExisting(filePath: string, file: HubFile, recorded: ManifestFile | undefined): Promise<string | undefined> {
  let size: number;
  try {
    size = (await stat(filePath)).size;
  } catch {
    return undefined;
  }
  if (size !== file.size) return undefined;
  if (file.sha256 && recorded?.sha256 === file.sha256 && recorded.size === size) return file.sha256;
  const digest = new FileDigest(file.size);
  await digest.updateFromFile(filePath);
  const { sha256, gitSha1 } = digest.digest();
  const matches = file.sha256 ? sha256 === file.sha256 : file.gitOid ? gitSha1 === file.gitOid : recorded?.sha256 === sha256;
  return matches ? sha256 : undefined;
}

function ensureInside(root: string, relative: string): void {
  const resolved = path.resolve(root, relative);
  if (!resolved.startsWith(path.resolve(root) + path.sep)) throw new Error(`refusing to write outside the model folder: ${relative}`);
}
