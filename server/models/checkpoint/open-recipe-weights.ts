/**
 * A recipe's weights, ready for the graph builders: the checkpoint, merged with an inpainting model when the
 * recipe says ("add difference"), with its LoRAs' deltas added as each weight is read. Opening reads headers
 * only, so a LoRA that matches nothing or a merge of mismatched models fails before any hashing or building.
 */
import type { SdArchitecture } from "../../engines/onnx/graph/architecture.ts";
import type { ModelWeights } from "../../engines/onnx/graph/model-weights.ts";
import { inpaintingMerge } from "./inpainting-merge.ts";
import { planLoras, withLoras } from "./lora/lora-weights.ts";
import type { LoraUse } from "./model-recipe.ts";
import { openSdCheckpoint, type SdCheckpoint } from "./open-sd-checkpoint.ts";
import type { PartWeights } from "./part-weights.ts";

/** What a build job is asked for: paths the server resolved, never ones a workflow gave. */
export interface RecipeSources {
  /** A checkpoint file or a diffusers folder (the custom model of a merge). */
  readonly checkpoint: string;
  readonly loras?: readonly LoraUse[];
  readonly merge?: { readonly inpainting: string; readonly base: string; readonly multiplier: number };
}

export interface RecipeWeights {
  readonly checkpoint: SdCheckpoint;
  readonly architecture: SdArchitecture;
  readonly unet: ModelWeights;
  readonly vae: ModelWeights;
  readonly textEncoder: ModelWeights;
  /** The networks' names and shapes (a merge or LoRA changes values, never names or shapes). */
  readonly names: { readonly unet: PartWeights; readonly vae: PartWeights; readonly textEncoder: PartWeights };
  /** Per LoRA of the recipe: whether it changes the UNet and the text encoder (a part's key holds only those that do). */
  readonly loraTouches: ReadonlyArray<{ readonly unet: boolean; readonly textEncoder: boolean }>;
  /** The files each part's bytes come from, for the part's cache key. */
  readonly files: { readonly checkpoint: readonly string[]; readonly inpainting: readonly string[]; readonly base: readonly string[] };
  close(): Promise<void>;
}

export async function openRecipeWeights(sources: RecipeSources): Promise<RecipeWeights> {
  const opened: Array<{ close(): Promise<void> }> = [];
  try {
    const checkpoint = await openSdCheckpoint(sources.checkpoint);
    opened.push(checkpoint);
    let unet: ModelWeights = checkpoint.unet;
    let vae: ModelWeights = checkpoint.vae;
    let textEncoder: ModelWeights = checkpoint.textEncoder;
    let architecture = checkpoint.architecture;
    let names = { unet: checkpoint.unet, vae: checkpoint.vae, textEncoder: checkpoint.textEncoder };
    let inpaintingFiles: readonly string[] = [];
    let baseFiles: readonly string[] = [];
    let loraTouches: RecipeWeights["loraTouches"] = [];
    if (sources.merge) {
      const inpainting = await openSdCheckpoint(sources.merge.inpainting);
      opened.push(inpainting);
      const base = await openSdCheckpoint(sources.merge.base);
      opened.push(base);
      const merged = inpaintingMerge({ inpainting, custom: checkpoint, base }, sources.merge.multiplier);
      ({ unet, vae, textEncoder, architecture } = merged);
      // The merged UNet has the inpainting model's names and shapes (its 9-channel conv_in).
      names = { unet: inpainting.unet, vae: checkpoint.vae, textEncoder: checkpoint.textEncoder };
      inpaintingFiles = inpainting.files;
      baseFiles = base.files;
    }
    if (sources.loras && sources.loras.length > 0) {
      const plan = await planLoras(sources.loras, { unet: names.unet, textEncoder: names.textEncoder }, architecture.unet.layersPerBlock);
      opened.push(plan);
      unet = withLoras(unet, plan.unet);
      textEncoder = withLoras(textEncoder, plan.textEncoder);
      loraTouches = plan.touches;
    }
    return {
      checkpoint,
      architecture,
      unet,
      vae,
      textEncoder,
      names,
      loraTouches,
      files: { checkpoint: checkpoint.files, inpainting: inpaintingFiles, base: baseFiles },
      async close() {
        await Promise.all(opened.map((item) => item.close()));
      },
    };
  } catch (error) {
    await Promise.all(opened.map((item) => item.close().catch(() => {})));
    throw error;
  }
}
