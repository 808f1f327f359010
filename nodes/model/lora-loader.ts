import { resolveModelsDir } from "../../server/models/models-folder.ts";
import { LORAS_FOLDER, resolveLoraName } from "../../server/models/model-names.ts";
import { defineNode } from "../node-definition.ts";

/** ComfyUI's LoraLoader: strengths apart on the UNet (model) and the text encoder (clip). */
const STRENGTH = { type: "FLOAT", widget: "number", default: 1, min: -4, max: 4, step: 0.05 } as const;

/**
 * Adds a LoRA to a model. Nothing is computed here: the MODEL is a recipe, and the engine merges the LoRA into the
 * weights when it builds the graphs (W + strength · alpha / rank · up · down), keeping each part's build by its
 * own inputs, so a change of strength_model rebuilds the UNet only. Chains: several LoraLoaders in a row.
 */
export const LoraLoaderNode = defineNode({
  type: "LoraLoader",
  category: "model",
  displayName: "Load LoRA",
  description:
    `Adds a LoRA (a .safetensors file in the models folder's ${LORAS_FOLDER}/: kohya, diffusers/PEFT or LoCon) to a checkpoint's model. ` +
    "Merged into the weights when the graphs are built; the build of each part is kept, so changing a strength rebuilds only what it touches.",
  inputs: {
    model: { type: "MODEL", description: "A model from Load Checkpoint (or another Load LoRA)." },
    lora: { type: "STRING", widget: "lora", default: "", description: `A LoRA file in the models folder's ${LORAS_FOLDER}/ subfolder.` },
    strength_model: { ...STRENGTH, description: "How strongly the LoRA changes the UNet (−4 to 4; 0: not at all)." },
    strength_clip: { ...STRENGTH, description: "How strongly the LoRA changes the text encoder (−4 to 4; 0: not at all)." },
    ignore_unmatched: {
      type: "BOOLEAN",
      widget: "toggle",
      default: false,
      description: "Build even when some of the LoRA's keys match no module of the model (they are listed either way).",
    },
  },
  outputs: { model: { type: "MODEL", description: "The model with the LoRA." } },
  check({ lora }) {
    return typeof lora === "string" && lora.trim() === ""
      ? [{ input: "lora", message: `choose a LoRA: a .safetensors file in the models folder's ${LORAS_FOLDER}/ subfolder` }]
      : [];
  },
  async run({ model, lora, strength_model, strength_clip, ignore_unmatched }, ctx) {
    const modelsDir = ctx.engines.local?.modelsDir ?? resolveModelsDir(undefined);
    const file = await resolveLoraName(modelsDir, lora);
    return {
      model: { ...model, loras: [...model.loras, { file, strengthModel: strength_model, strengthClip: strength_clip, ignoreUnmatched: ignore_unmatched }] },
    };
  },
});
