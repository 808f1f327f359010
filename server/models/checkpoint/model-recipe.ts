/**
 * What a MODEL socket carries and a build is keyed by: a checkpoint and what is done to it (LoRAs with their
 * strengths, an "add difference" inpainting merge). Nodes compose recipes cheaply; the engine builds (or finds
 * built) the graphs of a recipe when a job first needs them.
 */
export interface LoraUse {
  /** The LoRA file (.safetensors), resolved: a path the server chose, never one a workflow gave. */
  readonly file: string;
  /** Strength on the UNet, −4 … 4 (ComfyUI's strength_model). */
  readonly strengthModel: number;
  /** Strength on the text encoder, −4 … 4 (ComfyUI's strength_clip). */
  readonly strengthClip: number;
  /** Keys of the LoRA that match no module of the model are listed and fail the build unless this is set. */
  readonly ignoreUnmatched: boolean;
}

/** inpainting + (custom − base) × multiplier, every UNet weight but the 9-channel conv_in; TE and VAE from custom. */
export interface InpaintingMergeRecipe {
  /** The standard SD 1.5 inpainting model (9-channel UNet). */
  readonly inpainting: ModelRecipe;
  /** Plain SD 1.5, the model `custom` was fine-tuned from. */
  readonly base: ModelRecipe;
  readonly multiplier: number;
}

export interface ModelRecipe {
  /** A checkpoint file, a diffusers folder, or an ONNX model folder (which takes no LoRA or merge). */
  readonly checkpoint: string;
  /** Applied in order, after any merge. */
  readonly loras: readonly LoraUse[];
  /** When set, `checkpoint` is the custom model of an inpainting merge. */
  readonly merge?: InpaintingMergeRecipe;
}

export function plainRecipe(checkpoint: string): ModelRecipe {
  return { checkpoint, loras: [] };
}

/** The key a loaded model is shared under: a plain model's path (so releasing a folder finds it), else the whole recipe. */
export function recipeKey(recipe: ModelRecipe): string {
  return recipe.loras.length === 0 && recipe.merge === undefined ? recipe.checkpoint : JSON.stringify(recipe);
}
