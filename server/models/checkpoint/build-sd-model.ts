/**
 * Writes the ONNX model folder the engine opens (optimum's layout: text_encoder/, unet/, vae_encoder/,
 * vae_decoder/, scheduler/, model_index.json) from an SD 1.x checkpoint, one weight at a time. This is
 * CPU and disk work of minutes at full size: it runs on a worker thread (build-worker.mjs).
 */
import { randomBytes } from "node:crypto";
import { copyFile, link, mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { OnnxGraphBuilder } from "../../engines/onnx/graph/onnx-graph-builder.ts";
import { buildTextEncoderGraph } from "../../engines/onnx/graph/text-encoder-graph.ts";
import { buildUnetGraph } from "../../engines/onnx/graph/unet-graph.ts";
import { buildVaeDecoderGraph } from "../../engines/onnx/graph/vae-decoder-graph.ts";
import { buildVaeEncoderGraph } from "../../engines/onnx/graph/vae-encoder-graph.ts";
import type { SdCheckpoint } from "./open-sd-checkpoint.ts";
import type { RecipeWeights } from "./open-recipe-weights.ts";
import { SD1_FAMILY } from "./sd1-family.ts";

/** Bump when the graphs written change: built folders of another version are rebuilt. */
export const GRAPH_BUILDER_VERSION = 1;
/** optimum's opset for SD is 14; 17 brings LayerNormalization, which CLIP and the transformers use. */
const OPSET = 17;
const PRODUCER = "maskflow-graph-builder";

export type BuildPart = "text_encoder" | "unet" | "vae_encoder" | "vae_decoder";
export const BUILD_PARTS: readonly BuildPart[] = ["text_encoder", "unet", "vae_encoder", "vae_decoder"];

export interface BuildProgress {
  readonly part: BuildPart;
  /** Weight bytes (as float32) written so far over all parts, of the total. */
  readonly writtenBytes: number;
  readonly totalBytes: number;
}

export interface BuildSummary {
  readonly layout: SdCheckpoint["layout"];
  readonly inpainting: boolean;
  readonly floatTypes: readonly string[];
  readonly weightBytes: number;
  readonly architecture: SdCheckpoint["architecture"];
  /** The parts written by this build; the others came from the part store. */
  readonly rebuiltParts: readonly BuildPart[];
}

function graphOf(weights: RecipeWeights, part: BuildPart): OnnxGraphBuilder {
  const { architecture } = weights;
  switch (part) {
    case "text_encoder":
      return buildTextEncoderGraph(weights.textEncoder, architecture.textEncoder);
    case "unet":
      return buildUnetGraph(weights.unet, architecture.unet);
    case "vae_encoder":
      return buildVaeEncoderGraph(weights.vae, architecture.vae);
    case "vae_decoder":
      return buildVaeDecoderGraph(weights.vae, architecture.vae);
  }
}

function weightBytesOf(weights: RecipeWeights, part: BuildPart): number {
  const named = part === "unet" ? weights.names.unet : part === "text_encoder" ? weights.names.textEncoder : weights.names.vae;
  const prefix = part === "vae_encoder" ? /^(encoder\.|quant_conv\.)/ : part === "vae_decoder" ? /^(decoder\.|post_quant_conv\.)/ : /^/;
  let bytes = 0;
  for (const name of named.names) {
    if (prefix.test(name)) bytes += (named.shape(name) ?? []).reduce((product, dim) => product * dim, 1) * 4;
  }
  return bytes;
}

/** Each part's graph files, kept by a key of what went into that part alone (see build-job.ts). */
export interface PartStore {
  readonly root: string;
  readonly keys: Readonly<Record<BuildPart, string>>;
}

const PART_FILES = ["model.onnx", "model.onnx_data"] as const;
const PART_COMPLETE = ".complete";

/** A hard link where the file system allows one (no second copy of gigabytes), a copy elsewhere. */
async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch {
    await copyFile(from, to);
  }
}

/**
 * Writes one part into `dir`: from the part store when a build with the same key made it before (a LoRA
 * strength change rebuilds the UNet or the text encoder, not the other parts), else built and kept there.
 */
async function writePart(
  weights: RecipeWeights,
  part: BuildPart,
  dir: string,
  store: PartStore | undefined,
  options: { signal?: AbortSignal; onProgress: (written: number) => void },
): Promise<boolean> {
  const write = (into: string) =>
    graphOf(weights, part).writeModel(into, {
      opsetVersion: OPSET,
      producerName: PRODUCER,
      producerVersion: String(GRAPH_BUILDER_VERSION),
      externalDataFile: "model.onnx_data",
      signal: options.signal,
      onProgress: options.onProgress,
    });
  if (!store) {
    await write(dir);
    return true;
  }
  const kept = path.join(store.root, `${part}-${store.keys[part]}`);
  let built = false;
  if (!(await stat(path.join(kept, PART_COMPLETE)).catch(() => undefined))) {
    const temporary = path.join(store.root, `.${part}-${store.keys[part]}.partial-${process.pid}-${randomBytes(4).toString("hex")}`);
    try {
      await write(temporary);
      await writeFile(path.join(temporary, PART_COMPLETE), "");
      await rename(temporary, kept).catch(async (error: unknown) => {
        // Another build of the same part finished first: keep its copy.
        if (!(await stat(path.join(kept, PART_COMPLETE)).catch(() => undefined))) throw error;
      });
    } finally {
      await rm(temporary, { recursive: true, force: true });
    }
    built = true;
  }
  await mkdir(dir, { recursive: true });
  for (const file of PART_FILES) await linkOrCopy(path.join(kept, file), path.join(dir, file));
  return built;
}

/** Builds a recipe's opened weights into the empty or absent folder `target`. */
export async function buildSdModel(
  weights: RecipeWeights,
  target: string,
  options: { onProgress?: (progress: BuildProgress) => void; signal?: AbortSignal; partStore?: PartStore } = {},
): Promise<BuildSummary> {
  const { architecture, checkpoint } = weights;
  const sizes = BUILD_PARTS.map((part) => weightBytesOf(weights, part));
  const totalBytes = sizes.reduce((sum, size) => sum + size, 0);
  let before = 0;
  const rebuilt: BuildPart[] = [];
  for (const [index, part] of BUILD_PARTS.entries()) {
    options.signal?.throwIfAborted();
    const built = await writePart(weights, part, path.join(target, part), options.partStore, {
      signal: options.signal,
      onProgress: (written) => options.onProgress?.({ part, writtenBytes: before + written, totalBytes }),
    });
    before += sizes[index];
    // A part taken from the part store was not built: no "building <part>" for it (the next part's progress moves on).
    if (built) {
      rebuilt.push(part);
      options.onProgress?.({ part, writtenBytes: before, totalBytes });
    }
  }
  const { unet, vae, textEncoder } = architecture;
  const inpainting = unet.inChannels === 9;
  await writeJson(path.join(target, "unet", "config.json"), {
    _class_name: "UNet2DConditionModel",
    in_channels: unet.inChannels,
    out_channels: unet.outChannels,
    block_out_channels: unet.blockOutChannels,
    layers_per_block: unet.layersPerBlock,
    cross_attention_dim: unet.crossAttentionDim,
    attention_head_dim: unet.heads,
    norm_num_groups: unet.normGroups,
    sample_size: unet.sampleSize,
  });
  const vaeConfig = {
    _class_name: "AutoencoderKL",
    block_out_channels: vae.blockOutChannels,
    layers_per_block: vae.layersPerBlock,
    latent_channels: vae.latentChannels,
    norm_num_groups: vae.normGroups,
    sample_size: vae.sampleSize,
    scaling_factor: vae.scalingFactor,
  };
  await writeJson(path.join(target, "vae_encoder", "config.json"), vaeConfig);
  await writeJson(path.join(target, "vae_decoder", "config.json"), vaeConfig);
  await writeJson(path.join(target, "text_encoder", "config.json"), {
    architectures: ["CLIPTextModel"],
    model_type: "clip_text_model",
    vocab_size: textEncoder.vocabSize,
    hidden_size: textEncoder.hiddenSize,
    intermediate_size: textEncoder.intermediateSize,
    num_hidden_layers: textEncoder.layers,
    num_attention_heads: textEncoder.heads,
    max_position_embeddings: textEncoder.maxPositions,
    hidden_act: "quick_gelu",
  });
  await writeJson(path.join(target, "scheduler", "scheduler_config.json"), SD1_FAMILY.schedulerConfig);
  await writeJson(path.join(target, "model_index.json"), {
    _class_name: inpainting ? "OnnxStableDiffusionInpaintPipeline" : "OnnxStableDiffusionPipeline",
    _maskflow_built_from: { layout: checkpoint.layout, float_types: checkpoint.floatTypes, builder_version: GRAPH_BUILDER_VERSION },
  });
  return { layout: checkpoint.layout, inpainting, floatTypes: checkpoint.floatTypes, weightBytes: totalBytes, architecture, rebuiltParts: rebuilt };
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify(value, null, 2) + "\n");
}
