/**
 * A pull of a diffusers checkpoint folder (the default model, or any repository named that has one): its files are
 * downloaded and verified as every pull's are, into a folder of their own beside the models
 * (<models>/.downloads/<name>: hidden from `models list` and from CheckpointLoader's choices), then BUILT into
 * Maskflow's ONNX graphs in the model folder the engine opens (<models>/<name>), on a worker thread. The downloads
 * stay: a pull run again verifies them and fetches nothing, and finds the build already made from them; a model
 * folder removed is rebuilt from them without a download. A build cancelled or failed leaves nothing half-built
 * under the model's name (it is written aside and renamed into place when complete).
 */
import { readdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { BUILT_MODELS_FOLDER, buildCheckpoint, type BuildJobProgress, type BuildJobResult } from "./checkpoint/built-model-cache.ts";
import { readBuildStamp } from "./checkpoint/build-stamp.ts";
import { rememberContentHashes } from "./checkpoint/checkpoint-content-key.ts";
import { CHECKPOINT_COMPONENTS } from "./checkpoint-pull-layout.ts";
import { defaultStatfs, requireFreeSpace } from "./disk-space.ts";
import { readManifest } from "./model-manifest.ts";
import { bytesStillNeeded, type PullEvent, type PullModelOptions, type PullPlan, type PullResult, pullModel } from "./pull-model.ts";

/** Where pulls keep the checkpoint files their models are built from, inside the models folder. */
export const DOWNLOADS_FOLDER = ".downloads";

/** The folder a pull keeps the checkpoint of `modelDir` in: <models>/.downloads/<name>. */
export function checkpointDownloadDir(modelDir: string): string {
  const resolved = path.resolve(modelDir);
  return path.join(path.dirname(resolved), DOWNLOADS_FOLDER, path.basename(resolved));
}

/** Where the builds of `modelDir`'s models folder keep their content-hash memo (<models>/.built). */
function builtCacheRoot(modelDir: string): string {
  return path.join(path.dirname(path.resolve(modelDir)), BUILT_MODELS_FOLDER);
}

/** The model folder holds something a build must not replace: a model that was not built from a checkpoint. */
export class ModelFolderTakenError extends Error {
  constructor(
    readonly modelDir: string,
    what: string,
  ) {
    super(
      `${modelDir} already holds ${what}, which a pull of a checkpoint will not replace: move it away (or delete it), ` +
        "or pull into another folder (--name NAME, or name in the API)",
    );
    this.name = "ModelFolderTakenError";
  }
}

/**
 * Throws ModelFolderTakenError unless `modelDir` is absent, empty, or a folder an earlier build made (which a new
 * build replaces once complete, or keeps when it was built from the same files).
 */
export async function checkBuildTarget(modelDir: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(modelDir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return;
    if (code === "ENOTDIR") throw new ModelFolderTakenError(modelDir, "a file of that name");
    throw error;
  }
  if (entries.length === 0 || (await readBuildStamp(modelDir))) return;
  const manifest = await readManifest(modelDir).catch(() => undefined);
  const what = manifest
    ? `a model pulled from ${manifest.repo}@${manifest.revision}`
    : entries.includes("model_index.json")
      ? "a model that no checkpoint build made (an ONNX export)"
      : "files of another model (an unfinished pull or export)";
  throw new ModelFolderTakenError(modelDir, what);
}

/** What a checkpoint pull still needs on disk: the downloads, and the graphs the build writes (0 when built already). */
export async function checkpointSpaceNeeded(plan: PullPlan, modelDir: string): Promise<{ downloadBytes: number; buildBytes: number }> {
  const downloadDir = checkpointDownloadDir(modelDir);
  const downloadBytes = await bytesStillNeeded(downloadDir, plan.files);
  const stamp = await readBuildStamp(modelDir);
  const manifest = await readManifest(downloadDir).catch(() => undefined);
  const builtFromThis = stamp !== undefined && path.resolve(stamp.source) === downloadDir && manifest !== undefined && manifest.commit === plan.commit;
  return { downloadBytes, buildBytes: builtFromThis ? 0 : (plan.build?.estimatedBytes ?? 0) };
}

export interface PullCheckpointOptions extends PullModelOptions {
  /** The pull's plan: a checkpoint's (plan.build set). */
  readonly plan: PullPlan;
  /** The downloads are verified and complete: the build starts. */
  readonly onBuildStart?: () => void;
  readonly onBuildProgress?: (progress: BuildJobProgress) => void;
}

export interface CheckpointPullResult {
  readonly pull: PullResult;
  readonly build: BuildJobResult;
  /** Where the checkpoint's files are kept (the build's source). */
  readonly downloadDir: string;
  /** The model folder built (options.modelDir). */
  readonly modelDir: string;
}

/**
 * Downloads a checkpoint's files (verified, resumable) into checkpointDownloadDir(modelDir), then builds them
 * into `modelDir`. Refuses before fetching anything when `modelDir` holds a model a build must not replace, or
 * when the disk has no room for what is still to download plus the graphs the build writes.
 */
export async function pullCheckpoint(options: PullCheckpointOptions): Promise<CheckpointPullResult> {
  const modelDir = path.resolve(options.modelDir);
  const downloadDir = checkpointDownloadDir(modelDir);
  const cacheRoot = builtCacheRoot(modelDir);
  await checkBuildTarget(modelDir);
  const space = await checkpointSpaceNeeded(options.plan, modelDir);
  await requireFreeSpace(modelDir, space.downloadBytes + space.buildBytes, options.statfs ?? defaultStatfs);

  const fetched: string[] = [];
  const onEvent = (event: PullEvent) => {
    if (event.type === "file-done" && !event.skipped) fetched.push(event.path);
    options.onEvent?.(event);
  };
  const pull = await pullModel({ ...options, modelDir: downloadDir, onEvent });
  await removeStrayWeights(downloadDir, pull.files.map((file) => file.path));
  // The downloads were hashed as they arrived: the build need not read them again to key them.
  const digests = new Map(pull.files.map((file) => [file.path, file.sha256]));
  await rememberContentHashes(
    cacheRoot,
    fetched.filter((file) => /\.safetensors$/.test(file)).map((file) => ({ file: path.join(downloadDir, file), sha256: digests.get(file)! })),
  ).catch(() => {});

  options.signal?.throwIfAborted();
  options.onBuildStart?.();
  const build = await buildCheckpoint(
    { source: downloadDir, cacheRoot, target: modelDir, replaceBuilt: true },
    { onProgress: options.onBuildProgress, signal: options.signal },
  );
  return { pull, build, downloadDir, modelDir };
}

/**
 * Weight files in the downloads that this pull did not fetch (a revision pulled before chose fp32, this one fp16):
 * the build would take whichever it prefers, so only the pulled ones may stay.
 */
async function removeStrayWeights(downloadDir: string, pulled: readonly string[]): Promise<void> {
  const keep = new Set(pulled);
  for (const component of CHECKPOINT_COMPONENTS) {
    const entries = await readdir(path.join(downloadDir, component)).catch(() => [] as string[]);
    for (const entry of entries) {
      const relative = `${component}/${entry}`;
      if (!/\.(safetensors|bin)$|\.safetensors\.index\.json$/.test(entry) || keep.has(relative)) continue;
      const file = path.join(downloadDir, component, entry);
      if ((await stat(file)).isFile()) await rm(file, { force: true });
    }
  }
}
