/**
 * One checkpoint → model folder job, as the build worker runs it: open the checkpoint's headers, key it by
 * content, reuse a folder already built with that key, or build into a temporary folder renamed into place
 * at the end, so an interrupted or failed build leaves nothing half-built under the final name.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { BUILD_PARTS, buildSdModel, GRAPH_BUILDER_VERSION, type BuildPart, type BuildSummary } from "./build-sd-model.ts";
import { CheckpointError } from "./checkpoint-tensor.ts";
import { buildKey, contentHashes } from "./checkpoint-content-key.ts";
import { BUILD_STAMP, type BuildStamp, readBuildStamp } from "./build-stamp.ts";
import { openSdCheckpoint } from "./open-sd-checkpoint.ts";

export { BUILD_STAMP, readBuildStamp };

export type BuildJobProgress =
  | { readonly phase: "reading"; readonly done: number; readonly total: number }
  | { readonly phase: "building"; readonly part: BuildPart; readonly done: number; readonly total: number };

export interface BuildJobRequest {
  /** A checkpoint file or a diffusers folder. */
  readonly source: string;
  /** Where content-keyed builds live (<models>/.built); the folder is <cacheRoot>/<key>. */
  readonly cacheRoot: string;
  /** Build into this folder instead of the cache (models import --name); refused when it holds something else. */
  readonly target?: string;
  /**
   * With target: a folder there that an earlier build made (it has a build stamp) from other content is replaced,
   * once the new build is complete (models pull rebuilding its model). Anything else there is still refused.
   */
  readonly replaceBuilt?: boolean;
}

export interface BuildJobResult {
  readonly dir: string;
  readonly key: string;
  /** False when a folder built earlier from the same content was reused. */
  readonly built: boolean;
  readonly summary?: BuildSummary;
}

type Stamp = BuildStamp;

async function exists(dir: string): Promise<boolean> {
  try {
    await readFile(path.join(dir, "model_index.json"));
    return true;
  } catch {
    return false;
  }
}

export async function runBuildJob(
  request: BuildJobRequest,
  onProgress: (progress: BuildJobProgress) => void = () => {},
  signal?: AbortSignal,
): Promise<BuildJobResult> {
  const source = path.resolve(request.source);
  // Headers only: what files make the model, and whether it is one Maskflow can build at all.
  const checkpoint = await openSdCheckpoint(source);
  const files = [...checkpoint.files];
  await checkpoint.close();
  await mkdir(request.cacheRoot, { recursive: true });
  onProgress({ phase: "reading", done: 0, total: 1 });
  const hashes = await contentHashes(files, request.cacheRoot, (done, total) => onProgress({ phase: "reading", done, total }), signal);
  const key = buildKey(hashes, { builderVersion: GRAPH_BUILDER_VERSION, float: "fp32" });
  const dir = request.target ? path.resolve(request.target) : path.join(request.cacheRoot, key);

  const stamp = await readBuildStamp(dir);
  if (stamp?.key === key) return { dir, key, built: false };
  if (request.target && ((await exists(dir)) || stamp) && !(request.replaceBuilt && stamp)) {
    throw new CheckpointError(dir, "a model folder of that name already exists (built from something else): choose another --name or remove it");
  }

  const temporary = path.join(path.dirname(dir), `.${path.basename(dir)}.partial-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    const summary = await buildSdModel(source, temporary, {
      signal,
      onProgress: (progress) => onProgress({ phase: "building", part: progress.part, done: progress.writtenBytes, total: progress.totalBytes }),
    });
    const written: Stamp = { key, source, builtAt: new Date().toISOString(), builderVersion: GRAPH_BUILDER_VERSION };
    await writeFile(path.join(temporary, BUILD_STAMP), JSON.stringify({ ...written, summary }, null, 2) + "\n");
    // A stale build of an older builder version under the same name gives way; a concurrent build of the same
    // key that finished first wins, and ours is dropped.
    if (stamp && stamp.key !== key) await rm(dir, { recursive: true, force: true });
    try {
      await rename(temporary, dir);
    } catch (error) {
      if ((await readBuildStamp(dir))?.key === key) {
        await rm(temporary, { recursive: true, force: true });
        return { dir, key, built: false };
      }
      throw error;
    }
    return { dir, key, built: true, summary };
  } catch (error) {
    await rm(temporary, { recursive: true, force: true });
    throw error;
  }
}

export { BUILD_PARTS };
