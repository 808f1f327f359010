/**
 * Opens a user's SD 1.x checkpoint — a single file in the original LDM/A1111 layout (.safetensors or
 * .ckpt) or a diffusers folder — as three networks' weights under diffusers' names, with the
 * architecture read from their shapes. Nothing is read but headers until a graph is written.
 */
import { readFile, readdir, stat } from "node:fs/promises";
import path from "node:path";
import type { SdArchitecture } from "../../engines/onnx/graph/architecture.ts";
import { checkpointKindOf } from "./checkpoint-kind.ts";
import { countIndexed } from "./count-indexed.ts";
import { CheckpointError, type CheckpointFile, type CheckpointTensor } from "./checkpoint-tensor.ts";
import { isVaeAttentionLinear, LDM_UNET_PREFIX, LDM_VAE_PREFIX, mapLdmKey, type ModelPart } from "./ldm-key-map.ts";
import { openCheckpoint } from "./open-checkpoint.ts";
import { PartWeights } from "./part-weights.ts";
import { detectArchitecture } from "./sd-architecture-detection.ts";

export interface SdCheckpoint {
  /** The file or folder the user named. */
  readonly source: string;
  readonly layout: "single-file" | "diffusers";
  /** Every file whose bytes make up the model (what a build's cache key hashes). */
  readonly files: readonly string[];
  readonly architecture: SdArchitecture;
  readonly unet: PartWeights;
  readonly vae: PartWeights;
  readonly textEncoder: PartWeights;
  /** The float types of the weights, e.g. ["F16"] for an fp16 checkpoint. */
  readonly floatTypes: readonly string[];
  close(): Promise<void>;
}

export async function openSdCheckpoint(source: string): Promise<SdCheckpoint> {
  const resolved = path.resolve(source);
  let isFolder: boolean;
  try {
    isFolder = (await stat(resolved)).isDirectory();
  } catch {
    throw new CheckpointError(resolved, "no such file or folder");
  }
  return isFolder ? openDiffusersFolder(resolved) : openSingleFile(resolved);
}

async function openSingleFile(file: string): Promise<SdCheckpoint> {
  const checkpoint = await openCheckpoint(file);
  try {
    const keys = [...checkpoint.tensors.keys()];
    const kind = checkpointKindOf(keys, (key) => checkpoint.tensors.get(key)?.shape);
    if (kind.kind === "unsupported") throw new CheckpointError(file, `this is ${kind.what}: ${kind.why}`);
    if (!kind.hasVae) throw new CheckpointError(file, `it has no VAE weights (${LDM_VAE_PREFIX}*): import a checkpoint that includes its VAE`);
    if (!kind.hasTextEncoder) {
      throw new CheckpointError(file, "it has no CLIP text encoder weights (cond_stage_model.transformer.*): import a full SD 1.x checkpoint");
    }
    const layout = {
      unetLayersPerBlock: unetLayersPerBlockOf(keys),
      vaeLevels: countIndexed(keys, `${LDM_VAE_PREFIX}encoder.down.`),
    };
    const parts: Record<ModelPart, PartWeights> = { unet: new PartWeights(file), vae: new PartWeights(file), text_encoder: new PartWeights(file) };
    for (const [key, tensor] of checkpoint.tensors) {
      const mapped = mapLdmKey(key, layout);
      if (!mapped) continue;
      let shape = tensor.shape;
      if (mapped.squeezeConvToLinear && shape.length === 4) shape = [shape[0], shape[1]];
      parts[mapped.part].add(mapped.name, tensor, shape);
    }
    return finish(file, "single-file", [file], parts, [checkpoint]);
  } catch (error) {
    await checkpoint.close();
    throw error;
  }
}

/** LDM numbers the UNet's input blocks consecutively: the first downsampler sits at layers_per_block + 1. */
function unetLayersPerBlockOf(keys: readonly string[]): number {
  const prefix = `${LDM_UNET_PREFIX}input_blocks.`;
  let firstDownsampler = Infinity;
  for (const key of keys) {
    const match = key.startsWith(prefix) ? /^(\d+)\.0\.op\.weight$/.exec(key.slice(prefix.length)) : null;
    if (match) firstDownsampler = Math.min(firstDownsampler, Number(match[1]));
  }
  if (firstDownsampler !== Infinity) return firstDownsampler - 1;
  return Math.max(1, countIndexed(keys, prefix) - 1);
}

/** The weight files diffusers writes for a component, best first (fp32 before fp16, safetensors before pickles). */
const COMPONENT_FILES: Readonly<Record<ModelPart, readonly string[]>> = {
  unet: ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"],
  vae: ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"],
  text_encoder: ["model.safetensors", "model.fp16.safetensors", "pytorch_model.bin", "pytorch_model.fp16.bin"],
};

async function openDiffusersFolder(folder: string): Promise<SdCheckpoint> {
  let modelIndex: Record<string, unknown>;
  try {
    modelIndex = JSON.parse(await readFile(path.join(folder, "model_index.json"), "utf8")) as Record<string, unknown>;
  } catch {
    const entries = await readdir(folder).catch(() => [] as string[]);
    if (entries.includes("unet") && entries.some((entry) => entry.endsWith(".onnx"))) {
      throw new CheckpointError(folder, "this looks like an ONNX export, not a checkpoint: use it as a model folder directly");
    }
    throw new CheckpointError(folder, "not a diffusers folder: model_index.json is missing or not JSON (a checkpoint is a .safetensors/.ckpt file or a diffusers folder)");
  }
  const className = String(modelIndex._class_name ?? "");
  if (/XL|StableDiffusion3|Flux|Kandinsky|IF/.test(className) || "text_encoder_2" in modelIndex) {
    throw new CheckpointError(folder, `this is a ${className || "non-SD 1.x"} folder: Maskflow builds SD 1.x models (SD 1.5 and its fine-tunes)`);
  }
  const opened: CheckpointFile[] = [];
  const files: string[] = [];
  try {
    const parts: Record<ModelPart, PartWeights> = {
      unet: new PartWeights(path.join(folder, "unet")),
      vae: new PartWeights(path.join(folder, "vae")),
      text_encoder: new PartWeights(path.join(folder, "text_encoder")),
    };
    for (const part of ["unet", "vae", "text_encoder"] as const) {
      const componentFiles = await componentWeightFiles(folder, part);
      for (const file of componentFiles) {
        const checkpoint = await openCheckpoint(file);
        opened.push(checkpoint);
        files.push(file);
        for (const [key, tensor] of checkpoint.tensors) addDiffusersTensor(parts[part], part, key, tensor);
      }
    }
    return await finish(folder, "diffusers", files, parts, opened);
  } catch (error) {
    await Promise.all(opened.map((file) => file.close()));
    throw error;
  }
}

function addDiffusersTensor(weights: PartWeights, part: ModelPart, key: string, tensor: CheckpointTensor): void {
  if (key.endsWith(".position_ids")) return;
  // transformers before 4.x saved CLIPTextModel without the "text_model." level.
  const name = part === "text_encoder" && !key.startsWith("text_model.") ? `text_model.${key}` : key;
  // Older diffusers VAEs name the attention query/key/value/proj_attn; newer ones to_q/to_k/to_v/to_out.0.
  const renamed =
    part === "vae"
      ? name.replace(/\.attentions\.0\.query\./, ".attentions.0.to_q.").replace(/\.attentions\.0\.key\./, ".attentions.0.to_k.")
          .replace(/\.attentions\.0\.value\./, ".attentions.0.to_v.").replace(/\.attentions\.0\.proj_attn\./, ".attentions.0.to_out.0.")
      : name;
  const squeeze = part === "vae" && isVaeAttentionLinear(renamed) && tensor.shape.length === 4;
  weights.add(renamed, tensor, squeeze ? [tensor.shape[0], tensor.shape[1]] : tensor.shape);
}

async function componentWeightFiles(folder: string, part: ModelPart): Promise<string[]> {
  const dir = path.join(folder, part);
  const entries = await readdir(dir).catch(() => null);
  if (!entries) throw new CheckpointError(folder, `the diffusers folder has no ${part}/ folder`);
  for (const name of COMPONENT_FILES[part]) {
    if (entries.includes(name)) return [path.join(dir, name)];
    // Sharded weights: an index naming the shard of each tensor.
    if (entries.includes(`${name}.index.json`)) {
      const index = JSON.parse(await readFile(path.join(dir, `${name}.index.json`), "utf8")) as { weight_map?: Record<string, string> };
      const shards = [...new Set(Object.values(index.weight_map ?? {}))];
      if (shards.length === 0 || shards.some((shard) => path.basename(shard) !== shard)) {
        throw new CheckpointError(path.join(dir, `${name}.index.json`), "its weight_map names no shard, or a shard outside the folder");
      }
      return shards.map((shard) => path.join(dir, shard));
    }
  }
  throw new CheckpointError(dir, `no weights: expected one of ${COMPONENT_FILES[part].join(", ")}`);
}

async function finish(
  source: string,
  layout: SdCheckpoint["layout"],
  files: readonly string[],
  parts: Record<ModelPart, PartWeights>,
  opened: readonly CheckpointFile[],
): Promise<SdCheckpoint> {
  for (const weights of [parts.unet, parts.text_encoder]) {
    const context = weights.shape("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight")?.[1] ??
      weights.shape("text_model.embeddings.token_embedding.weight")?.[1];
    if (context === 1024) throw new CheckpointError(source, "this is an SD 2.x model (1024-wide text context): Maskflow builds SD 1.x models");
  }
  // SD 2.x-style linear projections in a transformer are 1×1 convolutions in SD 1.x: the same numbers.
  for (const name of parts.unet.names) {
    const shape = parts.unet.shape(name);
    if (/\.attentions\.\d+\.proj_(in|out)\.weight$/.test(name) && shape?.length === 2) {
      const tensor = parts.unet.tensor(name);
      if (tensor) parts.unet.replaceShape(name, tensor, [shape[0], shape[1], 1, 1]);
    }
  }
  const architecture = detectArchitecture({ unet: parts.unet, vae: parts.vae, textEncoder: parts.text_encoder });
  const floatTypes = new Set<string>();
  for (const weights of Object.values(parts)) {
    for (const name of weights.names) {
      const dtype = weights.tensor(name)?.dtype;
      if (dtype === "F32" || dtype === "F16" || dtype === "BF16") floatTypes.add(dtype);
    }
  }
  return {
    source,
    layout,
    files,
    architecture,
    unet: parts.unet,
    vae: parts.vae,
    textEncoder: parts.text_encoder,
    floatTypes: [...floatTypes].sort(),
    async close() {
      await Promise.all(opened.map((file) => file.close()));
    },
  };
}
