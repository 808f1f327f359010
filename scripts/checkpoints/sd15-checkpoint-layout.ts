// The layout of an SD 1.x single-file checkpoint, for any SdArchitecture: every tensor's name and shape under
// diffusers' names (in diffusers' module order), how its random values are drawn, and the diffusers → LDM / A1111
// names and shapes (as diffusers' old scripts/convert_diffusers_to_original_stable_diffusion.py has them; the UNet's
// through the product's own inverse, server/models/checkpoint/ldm-names.ts). Shared
// by the tiny test checkpoint (test/fixtures/make-tiny-checkpoint.ts, which holds its tensors in memory) and the
// full-size one the checkpoint-build bench streams to disk (scripts/checkpoints/write-random-checkpoint.ts).
import type { SdArchitecture, TextEncoderArchitecture, UnetArchitecture, VaeArchitecture } from "../../server/engines/onnx/graph/architecture.ts";
import { unetLdmKey } from "../../server/models/checkpoint/ldm-names.ts";

/** runwayml/stable-diffusion-inpainting's architecture (UNet 859.5 M parameters, VAE 83.7 M, CLIP text 123.1 M). */
export const SD15_INPAINTING_ARCHITECTURE: SdArchitecture = {
  unet: {
    inChannels: 9,
    outChannels: 4,
    blockOutChannels: [320, 640, 1280, 1280],
    layersPerBlock: 2,
    crossAttentionDim: 768,
    heads: 8,
    normGroups: 32,
    transformerDepth: 1,
    sampleSize: 64,
  },
  vae: { blockOutChannels: [128, 256, 512, 512], layersPerBlock: 2, latentChannels: 4, normGroups: 32, sampleSize: 512, scalingFactor: 0.18215 },
  textEncoder: { vocabSize: 49408, hiddenSize: 768, intermediateSize: 3072, layers: 12, heads: 12, maxPositions: 77, layerNormEpsilon: 1e-5 },
};

// ---------------------------------------------------------------------------------------------------------------
// The tensors under diffusers' names, in diffusers' module order

/** How a tensor's values are drawn; chosen so activations stay in range through the whole network. */
export type Init =
  | { readonly kind: "uniform"; readonly bound: number } // conv / linear: ±1/√fan_in, torch's default range
  | { readonly kind: "norm-weight" } // 1 ± 0.1
  | { readonly kind: "norm-bias" } // ± 0.05
  | { readonly kind: "embedding" }; // ± 0.5

export interface TensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly init: Init;
}

class SpecList {
  readonly specs: TensorSpec[] = [];

  /** weight [out, in, k, k] (k = 0: a linear [out, in]) and, unless told not to, bias [out]. */
  layer(prefix: string, out: number, input: number, kernel: number, bias = true): void {
    const shape = kernel === 0 ? [out, input] : [out, input, kernel, kernel];
    const bound = 1 / Math.sqrt(input * Math.max(1, kernel * kernel));
    this.specs.push({ name: `${prefix}.weight`, shape, init: { kind: "uniform", bound } });
    if (bias) this.specs.push({ name: `${prefix}.bias`, shape: [out], init: { kind: "uniform", bound } });
  }

  norm(prefix: string, channels: number): void {
    this.specs.push({ name: `${prefix}.weight`, shape: [channels], init: { kind: "norm-weight" } });
    this.specs.push({ name: `${prefix}.bias`, shape: [channels], init: { kind: "norm-bias" } });
  }

  embedding(name: string, rows: number, width: number): void {
    this.specs.push({ name, shape: [rows, width], init: { kind: "embedding" } });
  }

  /** diffusers' ResnetBlock2D (time embedding projection only in the UNet's). */
  resnet(prefix: string, input: number, out: number, timeEmbedding: number | null): void {
    this.norm(`${prefix}.norm1`, input);
    this.layer(`${prefix}.conv1`, out, input, 3);
    if (timeEmbedding !== null) this.layer(`${prefix}.time_emb_proj`, out, timeEmbedding, 0);
    this.norm(`${prefix}.norm2`, out);
    this.layer(`${prefix}.conv2`, out, out, 3);
    if (input !== out) this.layer(`${prefix}.conv_shortcut`, out, input, 1);
  }

  /** diffusers' Transformer2DModel as SD 1.x has it: 1×1 conv proj_in/proj_out, GEGLU feed-forward. */
  transformer(prefix: string, channels: number, context: number, depth: number): void {
    this.norm(`${prefix}.norm`, channels);
    this.layer(`${prefix}.proj_in`, channels, channels, 1);
    for (let d = 0; d < depth; d++) {
      const block = `${prefix}.transformer_blocks.${d}`;
      for (const [n, attention, keys] of [[1, "attn1", channels], [2, "attn2", context]] as const) {
        this.norm(`${block}.norm${n}`, channels);
        this.layer(`${block}.${attention}.to_q`, channels, channels, 0, false);
        this.layer(`${block}.${attention}.to_k`, channels, keys, 0, false);
        this.layer(`${block}.${attention}.to_v`, channels, keys, 0, false);
        this.layer(`${block}.${attention}.to_out.0`, channels, channels, 0);
      }
      this.norm(`${block}.norm3`, channels);
      this.layer(`${block}.ff.net.0.proj`, channels * 8, channels, 0);
      this.layer(`${block}.ff.net.2`, channels, channels * 4, 0);
    }
    this.layer(`${prefix}.proj_out`, channels, channels, 1);
  }

  /** The VAE's single-head attention (diffusers' Attention: group_norm, to_q/k/v, to_out.0, all linear). */
  vaeAttention(prefix: string, channels: number): void {
    this.norm(`${prefix}.group_norm`, channels);
    for (const part of ["to_q", "to_k", "to_v", "to_out.0"]) this.layer(`${prefix}.${part}`, channels, channels, 0);
  }
}

/** Every level but the last attends on the way down; mirrored on the way up (SD 1.x's block types). */
export const downHasAttention = (level: number, levels: number) => level < levels - 1;
export const upHasAttention = (level: number) => level > 0;

/** UNet2DConditionModel's state dict (names and shapes) for an SD 1.x architecture. */
export function unetSpecs(unet: UnetArchitecture): TensorSpec[] {
  const list = new SpecList();
  const channels = unet.blockOutChannels;
  const levels = channels.length;
  const time = channels[0] * 4;
  list.layer("conv_in", channels[0], unet.inChannels, 3);
  list.layer("time_embedding.linear_1", time, channels[0], 0);
  list.layer("time_embedding.linear_2", time, time, 0);
  let output = channels[0];
  for (let i = 0; i < levels; i++) {
    const input = output;
    output = channels[i];
    for (let j = 0; j < unet.layersPerBlock; j++) {
      if (downHasAttention(i, levels)) list.transformer(`down_blocks.${i}.attentions.${j}`, output, unet.crossAttentionDim, unet.transformerDepth);
    }
    for (let j = 0; j < unet.layersPerBlock; j++) list.resnet(`down_blocks.${i}.resnets.${j}`, j === 0 ? input : output, output, time);
    if (i < levels - 1) list.layer(`down_blocks.${i}.downsamplers.0.conv`, output, output, 3);
  }
  const reversed = [...channels].reverse();
  output = reversed[0];
  for (let i = 0; i < levels; i++) {
    const previous = output;
    output = reversed[i];
    const input = reversed[Math.min(i + 1, levels - 1)];
    for (let j = 0; j <= unet.layersPerBlock; j++) {
      if (upHasAttention(i)) list.transformer(`up_blocks.${i}.attentions.${j}`, output, unet.crossAttentionDim, unet.transformerDepth);
    }
    for (let j = 0; j <= unet.layersPerBlock; j++) {
      const skip = j === unet.layersPerBlock ? input : output;
      list.resnet(`up_blocks.${i}.resnets.${j}`, (j === 0 ? previous : output) + skip, output, time);
    }
    if (i < levels - 1) list.layer(`up_blocks.${i}.upsamplers.0.conv`, output, output, 3);
  }
  const middle = channels[levels - 1];
  list.transformer("mid_block.attentions.0", middle, unet.crossAttentionDim, unet.transformerDepth);
  list.resnet("mid_block.resnets.0", middle, middle, time);
  list.resnet("mid_block.resnets.1", middle, middle, time);
  list.norm("conv_norm_out", channels[0]);
  list.layer("conv_out", unet.outChannels, channels[0], 3);
  return list.specs;
}

/** AutoencoderKL's state dict for an SD 1.x VAE (RGB in and out). */
export function vaeSpecs(vae: VaeArchitecture): TensorSpec[] {
  const list = new SpecList();
  const channels = vae.blockOutChannels;
  const levels = channels.length;
  const last = channels[levels - 1];
  const mid = (prefix: string) => {
    list.vaeAttention(`${prefix}.mid_block.attentions.0`, last);
    list.resnet(`${prefix}.mid_block.resnets.0`, last, last, null);
    list.resnet(`${prefix}.mid_block.resnets.1`, last, last, null);
  };
  list.layer("encoder.conv_in", channels[0], 3, 3);
  let output = channels[0];
  for (let i = 0; i < levels; i++) {
    const input = output;
    output = channels[i];
    for (let j = 0; j < vae.layersPerBlock; j++) list.resnet(`encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? input : output, output, null);
    if (i < levels - 1) list.layer(`encoder.down_blocks.${i}.downsamplers.0.conv`, output, output, 3);
  }
  mid("encoder");
  list.norm("encoder.conv_norm_out", last);
  list.layer("encoder.conv_out", 2 * vae.latentChannels, last, 3);
  list.layer("decoder.conv_in", last, vae.latentChannels, 3);
  const reversed = [...channels].reverse();
  output = reversed[0];
  for (let i = 0; i < levels; i++) {
    const previous = output;
    output = reversed[i];
    for (let j = 0; j <= vae.layersPerBlock; j++) list.resnet(`decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? previous : output, output, null);
    if (i < levels - 1) list.layer(`decoder.up_blocks.${i}.upsamplers.0.conv`, output, output, 3);
  }
  mid("decoder");
  list.norm("decoder.conv_norm_out", channels[0]);
  list.layer("decoder.conv_out", 3, channels[0], 3);
  list.layer("quant_conv", 2 * vae.latentChannels, 2 * vae.latentChannels, 1);
  list.layer("post_quant_conv", vae.latentChannels, vae.latentChannels, 1);
  return list.specs;
}

/** transformers' CLIPTextModel state dict (its persistent tensors: position_ids is a buffer it no longer saves). */
export function textEncoderSpecs(text: TextEncoderArchitecture): TensorSpec[] {
  const list = new SpecList();
  const width = text.hiddenSize;
  list.embedding("text_model.embeddings.token_embedding.weight", text.vocabSize, width);
  list.embedding("text_model.embeddings.position_embedding.weight", text.maxPositions, width);
  for (let n = 0; n < text.layers; n++) {
    const layer = `text_model.encoder.layers.${n}`;
    for (const part of ["k_proj", "v_proj", "q_proj", "out_proj"]) list.layer(`${layer}.self_attn.${part}`, width, width, 0);
    list.norm(`${layer}.layer_norm1`, width);
    list.layer(`${layer}.mlp.fc1`, text.intermediateSize, width, 0);
    list.layer(`${layer}.mlp.fc2`, width, text.intermediateSize, 0);
    list.norm(`${layer}.layer_norm2`, width);
  }
  list.norm("text_model.final_layer_norm", width);
  return list.specs;
}

// ---------------------------------------------------------------------------------------------------------------
// Seeded values

/** The model's three networks, as the tensors' generators are keyed. */
export type Component = "unet" | "vae" | "text_encoder";

/** mulberry32, the same generator as test/fixtures/make-tiny-models.ts's createRandom: uniform in [0, 1). */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a of the name: each tensor's generator depends on its name only, not on what was drawn before it. */
function nameHash(name: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return hash;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A tensor's seeded values (float32), from its own generator: the same seed, component and name give the same values. */
export function tensorValues(component: Component, spec: TensorSpec, seed: number): Float32Array {
  const random = seededRandom((Math.imul(seed, 0x9e3779b1) ^ nameHash(`${component}:${spec.name}`)) >>> 0);
  const values = new Float32Array(elementCount(spec.shape));
  const centred = () => 2 * random() - 1;
  const { init } = spec;
  // One loop per kind: a full-size model draws about a billion values.
  switch (init.kind) {
    case "uniform": {
      const bound = init.bound;
      for (let i = 0; i < values.length; i++) values[i] = centred() * bound;
      break;
    }
    case "norm-weight":
      for (let i = 0; i < values.length; i++) values[i] = 1 + 0.1 * centred();
      break;
    case "norm-bias":
      for (let i = 0; i < values.length; i++) values[i] = 0.05 * centred();
      break;
    case "embedding":
      for (let i = 0; i < values.length; i++) values[i] = 0.5 * centred();
      break;
  }
  return values;
}

// ---------------------------------------------------------------------------------------------------------------
// diffusers → LDM names

export const LDM_UNET_PREFIX = "model.diffusion_model.";
export const LDM_VAE_PREFIX = "first_stage_model.";
export const LDM_TEXT_PREFIX = "cond_stage_model.transformer.";

export type PrefixTable = ReadonlyArray<readonly [diffusers: string, ldm: string]>;

/** The VAE's prefixes: LDM's decoder `up` is numbered from the lowest resolution, diffusers' up_blocks from the highest. */
export function vaePrefixTable(vae: VaeArchitecture): PrefixTable {
  const table: Array<readonly [string, string]> = [
    ["quant_conv.", "quant_conv."],
    ["post_quant_conv.", "post_quant_conv."],
  ];
  const levels = vae.blockOutChannels.length;
  for (const part of ["encoder", "decoder"]) {
    table.push([`${part}.conv_in.`, `${part}.conv_in.`], [`${part}.conv_out.`, `${part}.conv_out.`], [`${part}.conv_norm_out.`, `${part}.norm_out.`]);
    table.push([`${part}.mid_block.resnets.0.`, `${part}.mid.block_1.`], [`${part}.mid_block.resnets.1.`, `${part}.mid.block_2.`]);
    table.push([`${part}.mid_block.attentions.0.`, `${part}.mid.attn_1.`]);
  }
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < vae.layersPerBlock; j++) table.push([`encoder.down_blocks.${i}.resnets.${j}.`, `encoder.down.${i}.block.${j}.`]);
    if (i < levels - 1) table.push([`encoder.down_blocks.${i}.downsamplers.0.`, `encoder.down.${i}.downsample.`]);
    const up = levels - 1 - i;
    for (let j = 0; j <= vae.layersPerBlock; j++) table.push([`decoder.up_blocks.${i}.resnets.${j}.`, `decoder.up.${up}.block.${j}.`]);
    if (i < levels - 1) table.push([`decoder.up_blocks.${i}.upsamplers.0.`, `decoder.up.${up}.upsample.`]);
  }
  return table;
}

const VAE_RESNET_PARTS: PrefixTable = [["conv_shortcut.", "nin_shortcut."]];
const VAE_ATTENTION_PARTS: PrefixTable = [
  ["group_norm.", "norm."],
  ["to_q.", "q."],
  ["to_k.", "k."],
  ["to_v.", "v."],
  ["to_out.0.", "proj_out."],
];

function renamed(name: string, table: PrefixTable, component: string): { prefix: string; ldm: string; rest: string } {
  const matches = table.filter(([diffusers]) => name.startsWith(diffusers));
  if (matches.length !== 1) throw new Error(`${component}: ${name} matches ${matches.length} entries of the diffusers→LDM table`);
  const [diffusers, ldm] = matches[0];
  return { prefix: diffusers, ldm, rest: name.slice(diffusers.length) };
}

function renamePart(rest: string, parts: PrefixTable): string {
  for (const [diffusers, ldm] of parts) if (rest.startsWith(diffusers)) return ldm + rest.slice(diffusers.length);
  return rest;
}

/**
 * The LDM key (without its model.diffusion_model. prefix) of a diffusers UNet tensor: the product's own diffusers →
 * LDM inverse (server/models/checkpoint/ldm-names.ts, which kohya LoRAs with LDM names are matched through).
 */
export function unetLdmName(name: string, unet: UnetArchitecture): string {
  const key = unetLdmKey(name, unet.layersPerBlock, upHasAttention);
  if (key === undefined) throw new Error(`unet: ${name} has no LDM name`);
  return key;
}

/** The LDM key (without first_stage_model.) of a diffusers VAE tensor. */
export function vaeLdmName(name: string, vae: VaeArchitecture): string {
  const { prefix, ldm, rest } = renamed(name, vaePrefixTable(vae), "vae");
  if (prefix.includes(".resnets.")) return ldm + renamePart(rest, VAE_RESNET_PARTS);
  if (prefix.includes(".attentions.")) return ldm + renamePart(rest, VAE_ATTENTION_PARTS);
  return ldm + rest;
}

/** LDM keeps the VAE attention's projections as 1×1 convolutions: [C, C] → [C, C, 1, 1]. */
export function vaeLdmShape(ldmName: string, shape: readonly number[]): readonly number[] {
  return /\.mid\.attn_1\.(q|k|v|proj_out)\.weight$/.test(ldmName) ? [...shape, 1, 1] : shape;
}

/** CLIP's position_ids buffer, which real SD 1.x files keep (int64 [1, 77], 0…76), under the text prefix. */
export const LDM_POSITION_IDS = `${LDM_TEXT_PREFIX}text_model.embeddings.position_ids`;
/** The text encoder tensor the position_ids buffer follows in the state dict. */
export const POSITION_EMBEDDING = "text_model.embeddings.position_embedding.weight";

/** LatentDiffusion's DDPM schedule buffers (linear_start 0.00085, linear_end 0.012), which real SD files carry: name → 1000 values. */
export function ddpmScheduleBuffers(): Record<string, number[]> {
  const steps = 1000;
  const start = Math.sqrt(0.00085);
  const step = (Math.sqrt(0.012) - start) / (steps - 1);
  const betas = Array.from({ length: steps }, (_, i) => (i === steps - 1 ? Math.sqrt(0.012) : start + i * step) ** 2);
  const cumulative: number[] = [];
  let product = 1;
  for (const beta of betas) cumulative.push((product *= 1 - beta));
  const previous = [1, ...cumulative.slice(0, -1)];
  const posteriorVariance = betas.map((b, i) => (b * (1 - previous[i])) / (1 - cumulative[i]));
  return {
    betas,
    alphas_cumprod: cumulative,
    alphas_cumprod_prev: previous,
    sqrt_alphas_cumprod: cumulative.map(Math.sqrt),
    sqrt_one_minus_alphas_cumprod: cumulative.map((a) => Math.sqrt(1 - a)),
    log_one_minus_alphas_cumprod: cumulative.map((a) => Math.log(1 - a)),
    sqrt_recip_alphas_cumprod: cumulative.map((a) => Math.sqrt(1 / a)),
    sqrt_recipm1_alphas_cumprod: cumulative.map((a) => Math.sqrt(1 / a - 1)),
    posterior_variance: posteriorVariance,
    posterior_log_variance_clipped: posteriorVariance.map((v) => Math.log(Math.max(v, 1e-20))),
    posterior_mean_coef1: betas.map((b, i) => (b * Math.sqrt(previous[i])) / (1 - cumulative[i])),
    posterior_mean_coef2: betas.map((b, i) => ((1 - previous[i]) * Math.sqrt(1 - b)) / (1 - cumulative[i])),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The whole single file, as a list (values drawn only when asked)

/** One tensor of the LDM single file: where its values come from, and its LDM name and shape. */
export type LdmEntry =
  | { readonly source: "schedule"; readonly name: string; readonly shape: readonly number[]; readonly values: readonly number[] }
  | { readonly source: "position_ids"; readonly name: string; readonly shape: readonly number[] }
  | { readonly source: "random"; readonly name: string; readonly shape: readonly number[]; readonly component: Component; readonly spec: TensorSpec };

/** The LDM / A1111 single-file state dict in its order: the schedule buffers, then the UNet, the VAE and the text encoder. */
export function ldmEntries(architecture: SdArchitecture): LdmEntry[] {
  const out: LdmEntry[] = Object.entries(ddpmScheduleBuffers()).map(([name, values]) => ({ source: "schedule", name, shape: [values.length], values }));
  for (const spec of unetSpecs(architecture.unet)) {
    out.push({ source: "random", name: LDM_UNET_PREFIX + unetLdmName(spec.name, architecture.unet), shape: spec.shape, component: "unet", spec });
  }
  for (const spec of vaeSpecs(architecture.vae)) {
    const name = vaeLdmName(spec.name, architecture.vae);
    out.push({ source: "random", name: LDM_VAE_PREFIX + name, shape: vaeLdmShape(name, spec.shape), component: "vae", spec });
  }
  for (const spec of textEncoderSpecs(architecture.textEncoder)) {
    out.push({ source: "random", name: LDM_TEXT_PREFIX + spec.name, shape: spec.shape, component: "text_encoder", spec });
    if (spec.name === POSITION_EMBEDDING) out.push({ source: "position_ids", name: LDM_POSITION_IDS, shape: [1, architecture.textEncoder.maxPositions] });
  }
  return out;
}
