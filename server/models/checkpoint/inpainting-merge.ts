/**
 * "Add difference": an inpainting model made from any SD 1.x checkpoint, the recipe A1111's checkpoint merger and
 * ComfyUI's ModelMergeSubtract → ModelMergeAdd users apply by hand:
 *
 *   UNet = inpainting + (custom − base) × multiplier, weight by weight, in float32;
 *   conv_in.weight = the inpainting model's own (its 9 input channels: latents ‖ mask ‖ masked-image latents);
 *   text encoder and VAE = custom's.
 *
 * conv_in.bias has the same shape in all three models, so it is merged like every other weight: that is what both
 * tools do (a same-shaped tensor always takes the difference). conv_in.weight is the one tensor whose shapes differ;
 * ComfyUI's add leaves such a tensor as it is, the inpainting model's, and so does this. (A1111 goes one step
 * further and adds the difference to its first 4 input channels, keeping channels 4–8 the inpainting model's.)
 *
 * Nothing is read when the merge is made: each merged tensor is computed when a graph builder reads it (the three
 * tensors read, combined, returned), so a build still holds one weight at a time.
 */
import type { SdArchitecture, UnetArchitecture } from "../../engines/onnx/graph/architecture.ts";
import type { ModelWeights } from "../../engines/onnx/graph/model-weights.ts";
import { CheckpointError } from "./checkpoint-tensor.ts";
import type { SdCheckpoint } from "./open-sd-checkpoint.ts";
import type { PartWeights } from "./part-weights.ts";

/** The multiplier's range, checked where a recipe is made (CLI flag, node input) and again by the merge. */
export const INPAINTING_MERGE_MULTIPLIER_MIN = -4;
export const INPAINTING_MERGE_MULTIPLIER_MAX = 4;

/** Why a multiplier cannot be used, in a few words; undefined when it can. */
export function inpaintingMergeMultiplierProblem(multiplier: number): string | undefined {
  if (!Number.isFinite(multiplier)) return `the merge multiplier must be a number, not ${String(multiplier)}`;
  if (multiplier < INPAINTING_MERGE_MULTIPLIER_MIN || multiplier > INPAINTING_MERGE_MULTIPLIER_MAX) {
    return `the merge multiplier must be from ${INPAINTING_MERGE_MULTIPLIER_MIN} to ${INPAINTING_MERGE_MULTIPLIER_MAX}, not ${multiplier}`;
  }
  return undefined;
}

/** The one UNet weight taken whole from the inpainting model. */
export const INPAINTING_ONLY_WEIGHT = "conv_in.weight";

/** Weights a build reads, and the names it sizes its progress by. */
export interface NamedModelWeights extends ModelWeights {
  readonly names: readonly string[];
}

export interface InpaintingMergeSources {
  /** SD 1.5 inpainting (9-channel UNet). */
  readonly inpainting: SdCheckpoint;
  /** The plain (4-channel) checkpoint to make an inpainting model of; its text encoder and VAE are used as they are. */
  readonly custom: SdCheckpoint;
  /** Plain SD 1.5: the model `custom` was fine-tuned from. */
  readonly base: SdCheckpoint;
}

export interface MergedSdWeights {
  readonly unet: NamedModelWeights;
  readonly vae: PartWeights;
  readonly textEncoder: PartWeights;
  /** The inpainting model's UNet (9 channels in) with custom's VAE and text encoder. */
  readonly architecture: SdArchitecture;
}

/** Validates the three models and returns the merged weights; throws a one-line CheckpointError when they do not fit. */
export function inpaintingMerge(sources: InpaintingMergeSources, multiplier: number): MergedSdWeights {
  const { inpainting, custom, base } = sources;
  const problem = inpaintingMergeMultiplierProblem(multiplier);
  if (problem) throw new CheckpointError(custom.source, problem);

  const inChannels = inpainting.architecture.unet.inChannels;
  if (inChannels !== 9) {
    throw new CheckpointError(
      inpainting.source,
      `the inpainting model must have a 9-channel UNet (SD 1.5 inpainting); this one takes ${inChannels} channels`,
    );
  }
  for (const [role, model] of [["custom", custom], ["base", base]] as const) {
    const channels = model.architecture.unet.inChannels;
    if (channels === 4) continue;
    throw new CheckpointError(
      model.source,
      channels === 9
        ? role === "custom"
          ? "the custom model is already an inpainting model (9-channel UNet): use it as it is, or merge its plain (4-channel) original"
          : "the base model must be plain SD 1.x (4-channel UNet), not an inpainting model"
        : `the ${role} model must have a plain 4-channel UNet; this one takes ${channels} channels`,
    );
  }
  for (const [role, model] of [["custom", custom], ["base", base]] as const) {
    const difference = unetDifference(inpainting.architecture.unet, model.architecture.unet);
    if (difference) throw new CheckpointError(model.source, `the ${role} model's UNet differs from the inpainting model's: ${difference}`);
  }
  const context = inpainting.architecture.unet.crossAttentionDim;
  if (custom.architecture.textEncoder.hiddenSize !== context) {
    throw new CheckpointError(
      custom.source,
      `the custom model's text encoder is ${custom.architecture.textEncoder.hiddenSize} wide; the inpainting UNet takes a ${context}-wide context`,
    );
  }
  checkSameWeights(inpainting, custom, "custom");
  checkSameWeights(inpainting, base, "base");

  return {
    unet: new MergedUnetWeights(inpainting.unet, custom.unet, base.unet, multiplier),
    vae: custom.vae,
    textEncoder: custom.textEncoder,
    architecture: { unet: inpainting.architecture.unet, vae: custom.architecture.vae, textEncoder: custom.architecture.textEncoder },
  };
}

/** What makes two UNets unmergeable (widths, depths, context width), in words; undefined when they match. */
function unetDifference(inpainting: UnetArchitecture, other: UnetArchitecture): string | undefined {
  const widths = (unet: UnetArchitecture) => `[${unet.blockOutChannels.join(", ")}]`;
  if (widths(inpainting) !== widths(other)) return `block widths ${widths(other)}, not ${widths(inpainting)}`;
  if (inpainting.layersPerBlock !== other.layersPerBlock) return `${other.layersPerBlock} layers per block, not ${inpainting.layersPerBlock}`;
  if (inpainting.transformerDepth !== other.transformerDepth) return `transformer depth ${other.transformerDepth}, not ${inpainting.transformerDepth}`;
  if (inpainting.crossAttentionDim !== other.crossAttentionDim) return `a ${other.crossAttentionDim}-wide text context, not ${inpainting.crossAttentionDim}`;
  if (inpainting.outChannels !== other.outChannels) return `${other.outChannels} output channels, not ${inpainting.outChannels}`;
  return undefined;
}

/** Every UNet weight in both, with the same shape (conv_in.weight's input channels aside). */
function checkSameWeights(inpainting: SdCheckpoint, other: SdCheckpoint, role: "custom" | "base"): void {
  for (const name of inpainting.unet.names) {
    const shape = other.unet.shape(name);
    if (!shape) throw new CheckpointError(other.source, `the ${role} model has no UNet weight ${name}, which the inpainting model has`);
    const expected = inpainting.unet.shape(name) ?? [];
    const comparable = name === INPAINTING_ONLY_WEIGHT ? (s: readonly number[]) => [s[0], ...s.slice(2)] : (s: readonly number[]) => s;
    if (comparable(shape).join("×") !== comparable(expected).join("×")) {
      throw new CheckpointError(other.source, `the ${role} model's UNet weight ${name} is ${shape.join("×")}, the inpainting model's ${expected.join("×")}`);
    }
  }
  for (const name of other.unet.names) {
    if (!inpainting.unet.has(name)) {
      throw new CheckpointError(inpainting.source, `the inpainting model has no UNet weight ${name}, which the ${role} model has`);
    }
  }
}

/** inpainting + (custom − base) × multiplier, computed per weight when read. */
class MergedUnetWeights implements NamedModelWeights {
  constructor(
    private readonly inpainting: PartWeights,
    private readonly custom: PartWeights,
    private readonly base: PartWeights,
    private readonly multiplier: number,
  ) {}

  get names(): readonly string[] {
    return this.inpainting.names;
  }

  shape(name: string): readonly number[] | undefined {
    return this.inpainting.shape(name);
  }

  async read(name: string): Promise<Float32Array> {
    const inpainting = await this.inpainting.read(name);
    // A multiplier of 0 is the inpainting model itself, bit for bit (no −0 turned +0, no NaN from a difference).
    if (name === INPAINTING_ONLY_WEIGHT || this.multiplier === 0) return inpainting;
    const custom = await this.custom.read(name);
    const base = await this.base.read(name);
    if (custom.length !== inpainting.length || base.length !== inpainting.length) {
      throw new CheckpointError(this.custom.file, `UNet weight ${name}: ${custom.length} and ${base.length} values, the inpainting model's ${inpainting.length}`);
    }
    // float32 at each step, as torch computes inpainting + (custom - base) * multiplier on float32 tensors:
    // each double result of two float32 operands rounds to the float32 result.
    const m = Math.fround(this.multiplier);
    const merged = new Float32Array(inpainting.length);
    for (let i = 0; i < merged.length; i++) merged[i] = inpainting[i] + Math.fround(Math.fround(custom[i] - base[i]) * m);
    return merged;
  }
}
