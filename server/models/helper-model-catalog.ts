/**
 * The helper models `maskflow models pull NAME` knows besides the Stable Diffusion export: where each lives on
 * the hub, which files make it, and their sizes and sha256 as published, so a pull that gets other bytes fails
 * instead of installing them. Each goes into models/<name>, where the nodes look when they name no model.
 */

export type HelperModelKind = "segment-anything" | "learned-fill" | "lora";

export interface HelperModelFile {
  /** Path in the hub repository; the file keeps its name in the model folder. */
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

export interface HelperModel {
  /** The folder under models/ and the name `models pull` takes. */
  readonly name: string;
  readonly kind: HelperModelKind;
  readonly title: string;
  readonly repo: string;
  /** A commit where one is known, so the files cannot change under the checksums. */
  readonly revision: string;
  readonly files: readonly HelperModelFile[];
  readonly licence: string;
  /** A LoRA: the name its one file is installed under in the models folder's loras/, where Load LoRA lists it. */
  readonly loraFile?: string;
}

/**
 * Acly/MobileSAM: MobileSAM's weights (Apache-2.0) exported by Acly (MIT) for krita-ai-diffusion: an encoder that
 * normalizes and pads inside (input_image H×W×3) and segment-anything's single-mask prompt decoder. Sizes and
 * sha256 as listed by the hub (and by the t9749/mobilesam-onnx mirror, which pins the same two files).
 */
export const MOBILE_SAM: HelperModel = {
  name: "mobile-sam",
  kind: "segment-anything",
  title: "MobileSAM (click-to-select)",
  repo: "Acly/MobileSAM",
  revision: "main",
  files: [
    { path: "mobile_sam_image_encoder.onnx", size: 28_157_093, sha256: "580f5fb648ea1062c0aabc26217aed56921985f03f0cbbd852bba81d760cc749" },
    { path: "sam_mask_decoder_single.onnx", size: 16_501_323, sha256: "93915fc7c993ab9d59ab8c9ccd3bce37f7509c81ab4150a74abd4d2abbd8570d" },
  ],
  licence: "MobileSAM weights Apache-2.0, ONNX export MIT",
};

/**
 * Carve/LaMa-ONNX's lama_fp32.onnx: big-lama (Apache-2.0) at a fixed 512×512, image in 0..1, mask 1 = fill, output
 * in 0..255. Pinned to the commit whose lama_fp32.onnx has this sha256 (the file changed once before it).
 */
export const LAMA: HelperModel = {
  name: "lama",
  kind: "learned-fill",
  title: "LaMa (learned object removal)",
  repo: "Carve/LaMa-ONNX",
  revision: "c3c0c9e468934d62e79c329e35d82dd09ff8c444",
  files: [{ path: "lama_fp32.onnx", size: 208_044_816, sha256: "1faef5301d78db7dda502fe59966957ec4b79dd64e16f03ed96913c7a4eb68d6" }],
  licence: "Apache-2.0",
};

export const HELPER_MODELS: readonly HelperModel[] = [MOBILE_SAM, LAMA];

/**
 * latent-consistency/lcm-lora-sdv1-5: LCM-LoRA for SD 1.5 (a kohya-style LoRA on every UNet layer, rank 64), which
 * lets an SD 1.5 model, inpainting ones included, inpaint in 4 steps without guidance with the LCM scheduler. Size and
 * sha256 as the hub lists the file (and as two independent download scripts pin it); the pull refuses other bytes.
 */
export const LCM_LORA: HelperModel = {
  name: "lcm-lora",
  kind: "lora",
  title: "LCM-LoRA for SD 1.5 (4-step inpainting)",
  repo: "latent-consistency/lcm-lora-sdv1-5",
  revision: "main",
  files: [{ path: "pytorch_lora_weights.safetensors", size: 134_621_556, sha256: "8f90d840e075ff588a58e22c6586e2ae9a6f7922996ee6649a7f01072333afe4" }],
  licence: "OpenRAIL++-M",
  loraFile: "lcm-lora-sdv1-5.safetensors",
};

/** The LoRAs `maskflow models pull NAME` knows; each lands in models/loras/ under its loraFile name. */
export const LORA_DOWNLOADS: readonly HelperModel[] = [LCM_LORA];

export function helperModelNamed(name: string): HelperModel | undefined {
  return HELPER_MODELS.find((model) => model.name === name);
}

/** The helper model a pulled folder holds, by the repository its manifest names, else by the folder's name. */
export function helperModelFor(folderName: string, manifestRepo: string | undefined): HelperModel | undefined {
  if (manifestRepo !== undefined) return HELPER_MODELS.find((model) => model.repo === manifestRepo);
  return helperModelNamed(folderName);
}
