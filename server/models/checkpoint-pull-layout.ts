/**
 * Which files of a hub repository holding a diffusers SD 1.x folder (model_index.json, unet/, vae/, text_encoder/,
 * tokenizer/, scheduler/ with PyTorch weights) `models pull` fetches to build Maskflow's ONNX graphs from: the
 * three networks' weights as safetensors — the fp16 variant where the repository publishes one, else fp32, per
 * component — their config.json, the tokenizer and the scheduler's config, and model_index.json. Never the safety
 * checker or feature extractor, never pickled weights (.bin, .ckpt: code runs when they are loaded by torch, and
 * they duplicate the safetensors), never a single-file checkpoint next to the folder.
 */
import type { HubFile } from "./hub-client.ts";

export type CheckpointComponent = "unet" | "vae" | "text_encoder";
export const CHECKPOINT_COMPONENTS: readonly CheckpointComponent[] = ["unet", "vae", "text_encoder"];

/** Each component's weight files, preferred first: fp16 (half the download), then fp32. */
export const CHECKPOINT_WEIGHTS: Readonly<Record<CheckpointComponent, readonly string[]>> = {
  unet: ["diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.safetensors"],
  vae: ["diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.safetensors"],
  text_encoder: ["model.fp16.safetensors", "model.safetensors"],
};

/** Whether a repository's listing is a diffusers checkpoint folder rather than an ONNX export. */
export function isDiffusersCheckpointListing(paths: Iterable<string>): boolean {
  const present = new Set(paths);
  if (present.has("unet/model.onnx") || !present.has("model_index.json")) return false;
  return [...present].some((file) => /^unet\/[^/]+\.safetensors$/.test(file));
}

export interface CheckpointSelection {
  /** What the pull fetches (model_index.json last). */
  readonly files: readonly HubFile[];
  /** The weight file chosen for each component, or absent when the repository has none Maskflow takes. */
  readonly weights: Partial<Record<CheckpointComponent, HubFile>>;
  /** What is missing for a build, in words ("unet weights (diffusion_pytorch_model[.fp16].safetensors)"). */
  readonly missing: readonly string[];
}

/** The files of a diffusers repository's listing that a pull fetches to build from it. */
export function selectCheckpointFiles(listing: readonly HubFile[]): CheckpointSelection {
  const byPath = new Map(listing.map((file) => [file.path, file]));
  const files: HubFile[] = [];
  const weights: Partial<Record<CheckpointComponent, HubFile>> = {};
  const missing: string[] = [];
  const take = (filePath: string) => {
    const file = byPath.get(filePath);
    if (file) files.push(file);
    return file;
  };
  for (const component of CHECKPOINT_COMPONENTS) {
    take(`${component}/config.json`);
    const chosen = CHECKPOINT_WEIGHTS[component].map((name) => byPath.get(`${component}/${name}`)).find((file) => file !== undefined);
    if (chosen) {
      files.push(chosen);
      weights[component] = chosen;
    } else {
      missing.push(`${component} weights (${component}/${CHECKPOINT_WEIGHTS[component][1].replace(".safetensors", "[.fp16].safetensors")})`);
    }
  }
  // tokenizer/: its own files only (vocab.json, merges.txt, the configs), no nested folders.
  for (const file of listing) {
    if (/^tokenizer\/[^/]+\.(json|txt)$/.test(file.path)) files.push(file);
  }
  take("scheduler/scheduler_config.json");
  if (!byPath.has("model_index.json")) missing.unshift("model_index.json");
  files.sort((a, b) => a.path.localeCompare(b.path));
  // Last: a folder with model_index.json is taken for a whole diffusers folder (isCheckpointSource).
  const index = byPath.get("model_index.json");
  if (index) files.push(index);
  return { files, weights, missing };
}

/**
 * Bytes of the fp32 graphs a build writes from these weight files: what the weights take as float32 (an fp16 file
 * doubles). An estimate from the file sizes (headers and int64 buffers are counted too), for the free-space check.
 */
export function estimatedBuildBytes(weights: Partial<Record<CheckpointComponent, HubFile>>): number {
  let bytes = 0;
  for (const file of Object.values(weights)) {
    if (file) bytes += /\.fp16\.safetensors$/.test(file.path) ? file.size * 2 : file.size;
  }
  return bytes;
}
