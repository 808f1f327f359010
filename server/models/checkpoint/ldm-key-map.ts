/**
 * The original (LDM / A1111) single-file layout's keys → diffusers' module paths, the way diffusers'
 * `loaders/single_file_utils.py` converts them (`convert_ldm_unet_checkpoint`, `convert_ldm_vae_checkpoint`,
 * `convert_ldm_clip_checkpoint`), but one key at a time so a build never holds a state dict.
 */
export type ModelPart = "unet" | "vae" | "text_encoder";

export interface MappedKey {
  readonly part: ModelPart;
  /** The diffusers state-dict name within that part. */
  readonly name: string;
  /** A VAE attention's 1×1 convolution [C, C, 1, 1] is diffusers' Linear [C, C]. */
  readonly squeezeConvToLinear: boolean;
}

export const LDM_UNET_PREFIX = "model.diffusion_model.";
export const LDM_VAE_PREFIX = "first_stage_model.";
export const LDM_CLIP_PREFIX = "cond_stage_model.transformer.";

export interface LdmLayout {
  /** ResNets per UNet down level (diffusers' layers_per_block): the input/output block numbering depends on it. */
  readonly unetLayersPerBlock: number;
  /** VAE levels: LDM numbers the decoder's `up.N` from the shallowest, diffusers' up_blocks from the deepest. */
  readonly vaeLevels: number;
}

/** The diffusers name of one LDM key, or undefined for keys no SD 1.x network uses (EMA copies, position_ids). */
export function mapLdmKey(key: string, layout: LdmLayout): MappedKey | undefined {
  if (key.startsWith(LDM_UNET_PREFIX)) {
    const name = mapUnetKey(key.slice(LDM_UNET_PREFIX.length), layout.unetLayersPerBlock);
    return name === undefined ? undefined : { part: "unet", name, squeezeConvToLinear: false };
  }
  if (key.startsWith(LDM_VAE_PREFIX)) {
    const name = mapVaeKey(key.slice(LDM_VAE_PREFIX.length), layout.vaeLevels);
    if (name === undefined) return undefined;
    return { part: "vae", name, squeezeConvToLinear: isVaeAttentionLinear(name) };
  }
  if (key.startsWith(LDM_CLIP_PREFIX)) {
    const name = mapClipKey(key.slice(LDM_CLIP_PREFIX.length));
    return name === undefined ? undefined : { part: "text_encoder", name, squeezeConvToLinear: false };
  }
  return undefined;
}

/** A VAE mid-block attention projection: a Linear in diffusers, stored as a 1×1 convolution by LDM and older diffusers. */
export function isVaeAttentionLinear(name: string): boolean {
  return /\.mid_block\.attentions\.0\.(to_q|to_k|to_v|to_out\.0)\.weight$/.test(name);
}

const UNET_FIXED: Readonly<Record<string, string>> = {
  "time_embed.0": "time_embedding.linear_1",
  "time_embed.2": "time_embedding.linear_2",
  "input_blocks.0.0": "conv_in",
  "out.0": "conv_norm_out",
  "out.2": "conv_out",
};

function renameResnet(rest: string): string {
  return rest
    .replace(/^in_layers\.0\./, "norm1.")
    .replace(/^in_layers\.2\./, "conv1.")
    .replace(/^out_layers\.0\./, "norm2.")
    .replace(/^out_layers\.3\./, "conv2.")
    .replace(/^emb_layers\.1\./, "time_emb_proj.")
    .replace(/^skip_connection\./, "conv_shortcut.");
}

function mapUnetKey(key: string, layersPerBlock: number): string | undefined {
  const fixed = /^(.*)\.(weight|bias)$/.exec(key);
  if (fixed && UNET_FIXED[fixed[1]] !== undefined) return `${UNET_FIXED[fixed[1]]}.${fixed[2]}`;

  const input = /^input_blocks\.(\d+)\.(\d+)\.(.+)$/.exec(key);
  if (input) {
    const index = Number(input[1]);
    if (index === 0) return undefined;
    const level = Math.floor((index - 1) / (layersPerBlock + 1));
    const layer = (index - 1) % (layersPerBlock + 1);
    const [, , sub, rest] = input;
    if (sub === "0" && rest.startsWith("op.")) return `down_blocks.${level}.downsamplers.0.conv.${rest.slice(3)}`;
    if (sub === "0") return `down_blocks.${level}.resnets.${layer}.${renameResnet(rest)}`;
    if (sub === "1") return `down_blocks.${level}.attentions.${layer}.${rest}`;
    return undefined;
  }

  const middle = /^middle_block\.(\d)\.(.+)$/.exec(key);
  if (middle) {
    const [, sub, rest] = middle;
    if (sub === "0") return `mid_block.resnets.0.${renameResnet(rest)}`;
    if (sub === "1") return `mid_block.attentions.0.${rest}`;
    if (sub === "2") return `mid_block.resnets.1.${renameResnet(rest)}`;
    return undefined;
  }

  const output = /^output_blocks\.(\d+)\.(\d+)\.(.+)$/.exec(key);
  if (output) {
    const index = Number(output[1]);
    const level = Math.floor(index / (layersPerBlock + 1));
    const layer = index % (layersPerBlock + 1);
    const [, , sub, rest] = output;
    // The upsampler follows the ResNet (".1.conv") on levels without attention, the attention (".2.conv") on the others.
    if ((sub === "1" || sub === "2") && /^conv\.(weight|bias)$/.test(rest)) return `up_blocks.${level}.upsamplers.0.${rest}`;
    if (sub === "0") return `up_blocks.${level}.resnets.${layer}.${renameResnet(rest)}`;
    if (sub === "1") return `up_blocks.${level}.attentions.${layer}.${rest}`;
    return undefined;
  }
  return undefined;
}

function renameVaeResnet(rest: string): string {
  return rest.replace(/^nin_shortcut\./, "conv_shortcut.");
}

function renameVaeAttention(rest: string): string {
  return rest
    .replace(/^norm\./, "group_norm.")
    .replace(/^q\./, "to_q.")
    .replace(/^k\./, "to_k.")
    .replace(/^v\./, "to_v.")
    .replace(/^proj_out\./, "to_out.0.");
}

function mapVaeKey(key: string, levels: number): string | undefined {
  const coder = /^(encoder|decoder)\.(.+)$/.exec(key);
  if (!coder) return /^(quant_conv|post_quant_conv)\.(weight|bias)$/.test(key) ? key : undefined;
  const [, side, rest] = coder;
  if (/^(conv_in|conv_out)\.(weight|bias)$/.test(rest)) return key;
  const normOut = /^norm_out\.(weight|bias)$/.exec(rest);
  if (normOut) return `${side}.conv_norm_out.${normOut[1]}`;

  const midResnet = /^mid\.block_([12])\.(.+)$/.exec(rest);
  if (midResnet) return `${side}.mid_block.resnets.${Number(midResnet[1]) - 1}.${renameVaeResnet(midResnet[2])}`;
  const midAttention = /^mid\.attn_1\.(.+)$/.exec(rest);
  if (midAttention) return `${side}.mid_block.attentions.0.${renameVaeAttention(midAttention[1])}`;

  if (side === "encoder") {
    const down = /^down\.(\d+)\.(block\.(\d+)|downsample)\.(.+)$/.exec(rest);
    if (!down) return undefined;
    const level = Number(down[1]);
    if (down[2] === "downsample") return `encoder.down_blocks.${level}.downsamplers.0.${down[4]}`;
    return `encoder.down_blocks.${level}.resnets.${down[3]}.${renameVaeResnet(down[4])}`;
  }
  const up = /^up\.(\d+)\.(block\.(\d+)|upsample)\.(.+)$/.exec(rest);
  if (!up) return undefined;
  const block = levels - 1 - Number(up[1]);
  if (block < 0) return undefined;
  if (up[2] === "upsample") return `decoder.up_blocks.${block}.upsamplers.0.${up[4]}`;
  return `decoder.up_blocks.${block}.resnets.${up[3]}.${renameVaeResnet(up[4])}`;
}

function mapClipKey(key: string): string | undefined {
  // transformers before 4.x saved CLIPTextModel without the "text_model." level; diffusers adds it back.
  const name = key.startsWith("text_model.") ? key : `text_model.${key}`;
  if (name.endsWith(".position_ids")) return undefined;
  return name;
}
