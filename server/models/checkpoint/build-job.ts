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
import type { LoraUse } from "./model-recipe.ts";
import { openRecipeWeights, type RecipeSources } from "./open-recipe-weights.ts";

/** Where a cache keeps each part's graph by the part's own key: a LoRA strength change rebuilds only its parts. */
export const PART_STORE_FOLDER = "parts";

export { BUILD_STAMP, readBuildStamp };

export type BuildJobProgress =
  | { readonly phase: "reading"; readonly done: number; readonly total: number }
  | { readonly phase: "building"; readonly part: BuildPart; readonly done: number; readonly total: number };

export interface BuildJobRequest {
  /** A checkpoint file or a diffusers folder (the custom model of a merge). */
  readonly source: string;
  /** LoRAs merged into the weights, in order. */
  readonly loras?: readonly LoraUse[];
  /** source becomes the custom model of an "add difference" inpainting merge. */
  readonly merge?: RecipeSources["merge"];
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
  // Headers only: what files make the model, and whether Maskflow can build it at all (a LoRA that matches
  // nothing, a merge of mismatched models), before any hashing.
  const loras = request.loras ?? [];
  const weights = await openRecipeWeights({ checkpoint: source, loras, merge: request.merge });
  try {
    await mkdir(request.cacheRoot, { recursive: true });
    onProgress({ phase: "reading", done: 0, total: 1 });
    const groups = [weights.files.checkpoint, weights.files.inpainting, weights.files.base, loras.map((lora) => lora.file)];
    const hashes = await contentHashes(groups.flat(), request.cacheRoot, (done, total) => onProgress({ phase: "reading", done, total }), signal);
    const take = (() => {
      let next = 0;
      return (count: number) => hashes.slice(next, (next += count));
    })();
    const [checkpointHashes, inpaintingHashes, baseHashes, loraHashes] = groups.map((group) => take(group.length));
    const common = { builderVersion: GRAPH_BUILDER_VERSION, float: "fp32" };
    // A LoRA that changes nothing in a part (strength 0 there, or no module of it) is not part of that part's key.
    const loraKey = (part: "unet" | "textEncoder", strength: (lora: LoraUse) => number) =>
      loras.flatMap((lora, index) =>
        weights.loraTouches[index]?.[part] ? [{ sha256: loraHashes[index], strength: strength(lora), ignoreUnmatched: lora.ignoreUnmatched }] : [],
      );
    const merge = request.merge ? { inpainting: inpaintingHashes, base: baseHashes, multiplier: request.merge.multiplier } : undefined;
    const vaeKey = buildKey(checkpointHashes, { ...common, part: "vae" });
    const partKeys = {
      text_encoder: buildKey(checkpointHashes, { ...common, part: "text_encoder", loras: loraKey("textEncoder", (lora) => lora.strengthClip) }),
      unet: buildKey(checkpointHashes, { ...common, part: "unet", merge, loras: loraKey("unet", (lora) => lora.strengthModel) }),
      vae_encoder: vaeKey,
      vae_decoder: vaeKey,
    };
    const key = buildKey(Object.values(partKeys), common);
    const dir = request.target ? path.resolve(request.target) : path.join(request.cacheRoot, key);

    const stamp = await readBuildStamp(dir);
    if (stamp?.key === key) return { dir, key, built: false };
    if (request.target && ((await exists(dir)) || stamp) && !(request.replaceBuilt && stamp)) {
      throw new CheckpointError(dir, "a model folder of that name already exists (built from something else): choose another --name or remove it");
    }

    const temporary = path.join(path.dirname(dir), `.${path.basename(dir)}.partial-${process.pid}-${randomBytes(4).toString("hex")}`);
    try {
      const summary = await buildSdModel(weights, temporary, {
        signal,
        partStore: request.target ? undefined : { root: path.join(request.cacheRoot, PART_STORE_FOLDER), keys: partKeys },
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
  } finally {
    await weights.close();
  }
}

export { BUILD_PARTS };
