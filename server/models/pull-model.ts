import { rm, stat } from "node:fs/promises";
import path from "node:path";
import { defaultStatfs, diskFullDuringWrite, requireFreeSpace, type StatFs } from "./disk-space.ts";
import { downloadFile } from "./download-file.ts";
import { FileDigest } from "./file-digest.ts";
import type { HubClient, HubFile } from "./hub-client.ts";
import { HubError } from "./hub-errors.ts";
import { MANIFEST_NAME, type ManifestFile, readManifest, writeManifest } from "./model-manifest.ts";
import { estimatedBuildBytes, isDiffusersCheckpointListing, selectCheckpointFiles } from "./checkpoint-pull-layout.ts";
import { isNeededFile, missingRequiredFiles } from "./onnx-layout.ts";

export type PullEvent =
  | { type: "plan"; files: readonly HubFile[]; totalBytes: number; alreadyPresentBytes: number; neededBytes: number }
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
  /** The hub's listing when the caller already asked for it (to show the size before starting). */
  readonly plan?: PullPlan;
  /** Free-space probe (fs.statfs); tests pass a nearly full disk. */
  readonly statfs?: StatFs;
}

/** What a pull of `repo@revision` fetches: the files Maskflow needs, at one commit. */
export interface PullPlan {
  readonly repo: string;
  readonly revision: string;
  readonly commit: string | null;
  /** model_index.json last: the engine takes a folder with it for a model, so it must arrive after the rest. */
  readonly files: readonly HubFile[];
  readonly totalBytes: number;
  /**
   * Set when the repository is a diffusers checkpoint folder rather than an ONNX export: its files are downloaded
   * aside and then built into Maskflow's ONNX graphs (pull-checkpoint.ts). estimatedBytes: what the build writes.
   */
  readonly build?: { readonly estimatedBytes: number };
}

/**
 * Asks the hub what a pull would fetch and how big it is: an ONNX SD export's pipeline files, or a diffusers
 * checkpoint folder's files to build from; throws HubError when the repository is neither.
 */
export async function planPull(client: HubClient, repo: string, revision: string): Promise<PullPlan> {
  const commit = await client.resolveRevision(repo, revision);
  // Listing at the commit keeps the listing and the downloads on one snapshot even if the branch moves meanwhile.
  const snapshot = commit ?? revision;
  const listing = await client.listFiles(repo, snapshot);
  if (isDiffusersCheckpointListing(listing.map((file) => file.path))) {
    const selection = selectCheckpointFiles(listing);
    if (selection.missing.length) {
      throw new HubError(
        404,
        `${repo}@${revision} is a diffusers folder Maskflow cannot build from: no ${selection.missing.join(", ")} ` +
          "(only safetensors weights are fetched, never .bin or .ckpt)",
      );
    }
    const files = selection.files;
    return { repo, revision, commit, files, totalBytes: sumSizes(files), build: { estimatedBytes: estimatedBuildBytes(selection.weights) } };
  }
  const files = listing.filter((file) => isNeededFile(file.path)).sort(byDownloadOrder);
  const missing = missingRequiredFiles(files.map((file) => file.path));
  if (missing.length) {
    throw new HubError(
      404,
      `${repo}@${revision} is not an ONNX Stable Diffusion export: missing ${missing.join(", ")}; ` +
        "nor a diffusers checkpoint folder to build from (model_index.json and unet/*.safetensors)",
    );
  }
  return { repo, revision, commit, files, totalBytes: sumSizes(files) };
}

function sumSizes(files: readonly HubFile[]): number {
  return files.reduce((sum, file) => sum + file.size, 0);
}

function byDownloadOrder(a: HubFile, b: HubFile): number {
  const last = (file: HubFile) => (file.path === "model_index.json" ? 1 : 0);
  return last(a) - last(b) || a.path.localeCompare(b.path);
}

/** Bytes still to fetch into `modelDir`: whole files minus what is there at the right size or partly downloaded. */
export async function bytesStillNeeded(modelDir: string, files: readonly HubFile[]): Promise<number> {
  let needed = 0;
  for (const file of files) {
    const target = path.join(modelDir, file.path);
    const final = await stat(target).then((info) => info.size, () => -1);
    if (final === file.size) continue;
    const partial = await stat(`${target}.part`).then((info) => info.size, () => 0);
    needed += file.size - Math.min(partial, file.size);
  }
  return needed;
}

export interface PullResult {
  readonly modelDir: string;
  readonly commit: string | null;
  readonly files: readonly ManifestFile[];
  readonly downloadedBytes: number;
}

/**
 * Downloads the planned files of a hub repository (an ONNX export's pipeline files, a checkpoint's files to build
 * from, a helper model's) into `modelDir`, verifying each against the hub's size and digest, then writes the manifest. Re-running resumes: verified files are kept, partial ones continue.
 */
export async function pullModel(options: PullModelOptions): Promise<PullResult> {
  const { client, repo, revision, modelDir } = options;
  const plan = options.plan ?? (await planPull(client, repo, revision));
  const { commit, files, totalBytes } = plan;
  const snapshot = commit ?? revision;
  for (const file of files) ensureInside(modelDir, file.path);
  const statfs = options.statfs ?? defaultStatfs;
  const neededBytes = await bytesStillNeeded(modelDir, files);
  await requireFreeSpace(modelDir, neededBytes, statfs);

  // A previous complete pull of this same snapshot lets unchanged files be trusted by size + recorded sha256.
  const previous = await readManifest(modelDir).catch(() => undefined);
  const recorded = new Map(previous?.files.map((file) => [file.path, file]));
  // Until every file is verified again the folder is incomplete, whatever it was before.
  await rm(path.join(modelDir, MANIFEST_NAME), { force: true });

  const present = new Map<string, string>();
  for (const file of files) {
    const sha256 = await verifiedExisting(path.join(modelDir, file.path), file, recorded.get(file.path));
    if (sha256) present.set(file.path, sha256);
  }
  let doneBytes = files.filter((file) => present.has(file.path)).reduce((sum, file) => sum + file.size, 0);
  options.onEvent?.({ type: "plan", files, totalBytes, alreadyPresentBytes: doneBytes, neededBytes });

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
    let sha256: string;
    try {
      sha256 = await downloadFile(client, file, path.join(modelDir, file.path), {
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
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
      throw await diskFullDuringWrite(modelDir, file.path, await bytesStillNeeded(modelDir, files), statfs);
    }
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
