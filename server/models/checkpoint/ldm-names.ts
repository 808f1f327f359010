/**
 * diffusers' UNet names → the original (LDM / A1111) layout's keys: the inverse of `mapLdmKey` (ldm-key-map.ts)
 * for the UNet. A kohya LoRA trained on a single-file checkpoint names its modules after the LDM keys
 * (`lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q`), so matching it to diffusers-named weights
 * needs the LDM name of every weight of the model.
 */

const UNET_FIXED: Readonly<Record<string, string>> = {
  "time_embedding.linear_1": "time_embed.0",
  "time_embedding.linear_2": "time_embed.2",
  conv_in: "input_blocks.0.0",
  conv_norm_out: "out.0",
  conv_out: "out.2",
};

const RESNET_PARTS: ReadonlyArray<readonly [diffusers: string, ldm: string]> = [
  ["norm1.", "in_layers.0."],
  ["conv1.", "in_layers.2."],
  ["norm2.", "out_layers.0."],
  ["conv2.", "out_layers.3."],
  ["time_emb_proj.", "emb_layers.1."],
  ["conv_shortcut.", "skip_connection."],
];

function resnetLdm(rest: string): string | undefined {
  for (const [diffusers, ldm] of RESNET_PARTS) if (rest.startsWith(diffusers)) return ldm + rest.slice(diffusers.length);
  return undefined;
}

/**
 * The LDM key (without `model.diffusion_model.`) of one diffusers UNet name, or undefined when the LDM layout has
 * none. `upLevelHasAttention(level)` says whether up_blocks.<level> has attentions: its upsampler is the block's
 * second module after a ResNet alone, its third after a ResNet and an attention.
 */
export function unetLdmKey(name: string, layersPerBlock: number, upLevelHasAttention: (level: number) => boolean): string | undefined {
  const fixed = /^(.*)\.(weight|bias)$/.exec(name);
  if (fixed && UNET_FIXED[fixed[1]] !== undefined) return `${UNET_FIXED[fixed[1]]}.${fixed[2]}`;
  const perLevel = layersPerBlock + 1;

  const down = /^down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.+)$/.exec(name);
  if (down) {
    const level = Number(down[1]);
    const index = Number(down[3]);
    const rest = down[4];
    if (down[2] === "downsamplers") {
      return index === 0 && rest.startsWith("conv.") ? `input_blocks.${(level + 1) * perLevel}.0.op.${rest.slice(5)}` : undefined;
    }
    if (index >= layersPerBlock) return undefined;
    const block = 1 + level * perLevel + index;
    if (down[2] === "attentions") return `input_blocks.${block}.1.${rest}`;
    const renamed = resnetLdm(rest);
    return renamed === undefined ? undefined : `input_blocks.${block}.0.${renamed}`;
  }

  const middle = /^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(name);
  if (middle) {
    const index = Number(middle[2]);
    const rest = middle[3];
    if (middle[1] === "attentions") return index === 0 ? `middle_block.1.${rest}` : undefined;
    const renamed = resnetLdm(rest);
    return renamed === undefined || index > 1 ? undefined : `middle_block.${index * 2}.${renamed}`;
  }

  const up = /^up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.+)$/.exec(name);
  if (up) {
    const level = Number(up[1]);
    const index = Number(up[3]);
    const rest = up[4];
    if (up[2] === "upsamplers") {
      if (index !== 0 || !/^conv\.(weight|bias)$/.test(rest)) return undefined;
      return `output_blocks.${level * perLevel + layersPerBlock}.${upLevelHasAttention(level) ? 2 : 1}.${rest}`;
    }
    if (index > layersPerBlock) return undefined;
    const block = level * perLevel + index;
    if (up[2] === "attentions") return `output_blocks.${block}.1.${rest}`;
    const renamed = resnetLdm(rest);
    return renamed === undefined ? undefined : `output_blocks.${block}.0.${renamed}`;
  }
  return undefined;
}

/** diffusers name → LDM key (without `model.diffusion_model.`) for every UNet name given that has one. */
export function unetLdmKeys(names: Iterable<string>, layersPerBlock: number): Map<string, string> {
  const all = [...names];
  const attended = new Set<number>();
  for (const name of all) {
    const match = /^up_blocks\.(\d+)\.attentions\./.exec(name);
    if (match) attended.add(Number(match[1]));
  }
  const out = new Map<string, string>();
  for (const name of all) {
    const key = unetLdmKey(name, layersPerBlock, (level) => attended.has(level));
    if (key !== undefined) out.set(name, key);
  }
  return out;
}
