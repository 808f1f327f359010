/**
 * What a checkpoint file holds, told from its key names alone (as diffusers' `infer_diffusers_model_type`
 * and ComfyUI's `model_detection.py` do), so a file Maskflow cannot build gets one line saying what it is.
 */
import { LDM_CLIP_PREFIX, LDM_UNET_PREFIX, LDM_VAE_PREFIX } from "./ldm-key-map.ts";

export type CheckpointKind =
  | { readonly kind: "sd1"; readonly hasVae: boolean; readonly hasTextEncoder: boolean }
  | { readonly kind: "unsupported"; readonly what: string; readonly why: string };

const SD1_ONLY = "Maskflow builds SD 1.x models (SD 1.5 and its fine-tunes, inpainting or plain)";

/** The kind of an LDM single-file checkpoint, given its keys and a way to read a tensor's shape. */
export function checkpointKindOf(keys: readonly string[], shapeOf: (key: string) => readonly number[] | undefined): CheckpointKind {
  const has = (prefix: string) => keys.some((key) => key.startsWith(prefix));
  const hasPart = (pattern: RegExp) => keys.some((key) => pattern.test(key));

  if (hasPart(/(^|\.)lora_(up|down)\.weight$|\.lora_[AB]\.weight$|^lora_(unet|te\d?)_|\.hada_w1_a$|\.lokr_w1$/)) {
    return { kind: "unsupported", what: "a LoRA", why: "it changes a model, it is not one: add it to a checkpoint with a LoraLoader node" };
  }
  if (has("conditioner.embedders.")) {
    const refiner = !keys.includes("conditioner.embedders.1.model.positional_embedding");
    return { kind: "unsupported", what: refiner ? "an SDXL refiner checkpoint" : "an SDXL checkpoint", why: SD1_ONLY };
  }
  if (hasPart(/^(model\.diffusion_model\.)?joint_blocks\./)) return { kind: "unsupported", what: "an SD3 checkpoint", why: SD1_ONLY };
  if (hasPart(/^(model\.diffusion_model\.)?double_blocks\./)) return { kind: "unsupported", what: "a Flux checkpoint", why: SD1_ONLY };
  if (has("control_model.")) return { kind: "unsupported", what: "a ControlNet", why: SD1_ONLY + "; ControlNet is not supported yet" };
  if (has("cond_stage_model.model.")) {
    return { kind: "unsupported", what: "an SD 2.x checkpoint (OpenCLIP text encoder)", why: SD1_ONLY };
  }
  const contextWidth = shapeOf(`${LDM_UNET_PREFIX}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight`)?.[1];
  if (contextWidth === 1024) return { kind: "unsupported", what: "an SD 2.x checkpoint (1024-wide text context)", why: SD1_ONLY };
  if (keys.includes(`${LDM_UNET_PREFIX}input_blocks.10.0.skip_connection.bias`) && !keys.includes(`${LDM_UNET_PREFIX}input_blocks.11.0.in_layers.0.weight`)) {
    return { kind: "unsupported", what: "an SD x4 upscaler checkpoint", why: SD1_ONLY };
  }

  const hasUnet = has(LDM_UNET_PREFIX);
  const hasVae = has(LDM_VAE_PREFIX);
  const hasTextEncoder = has(LDM_CLIP_PREFIX);
  if (!hasUnet) {
    if (hasVae || hasPart(/^(encoder|decoder)\.(conv_in|down|up|mid)\./)) {
      return { kind: "unsupported", what: "a VAE alone", why: "a model needs a UNet and a text encoder too: import the full checkpoint" };
    }
    if (hasTextEncoder || has("text_model.")) {
      return { kind: "unsupported", what: "a text encoder alone", why: "a model needs a UNet and a VAE too: import the full checkpoint" };
    }
    return {
      kind: "unsupported",
      what: "not a Stable Diffusion checkpoint",
      why: `it has no UNet weights (${LDM_UNET_PREFIX}*): ${SD1_ONLY}, as a single file or a diffusers folder`,
    };
  }
  return { kind: "sd1", hasVae, hasTextEncoder };
}
