import { defineNode } from "../node-definition.ts";

/**
 * The "add difference" recipe A1111 and ComfyUI users follow by hand to make an inpainting model of a plain
 * checkpoint: inpainting + (custom − base) × multiplier for every UNet weight but the 9-channel conv_in (the
 * inpainting model's); the text encoder and VAE come from custom. Computed weight by weight when the graphs are
 * built, and kept like any build.
 */
export const InpaintingMergeNode = defineNode({
  type: "InpaintingMerge",
  category: "model",
  displayName: "Inpainting Merge",
  description:
    "Makes an inpainting model of a plain SD 1.5 checkpoint: inpainting + (custom − base) × multiplier, conv_in from the inpainting " +
    "model, text encoder and VAE from custom. Wire the standard SD 1.5 inpainting model, your checkpoint, and plain SD 1.5.",
  inputs: {
    inpainting: { type: "MODEL", description: "The standard SD 1.5 inpainting model (9-channel UNet)." },
    custom: { type: "MODEL", description: "The plain SD 1.5 checkpoint to make an inpainting model of." },
    base: { type: "MODEL", description: "Plain SD 1.5, the model `custom` was fine-tuned from." },
    multiplier: { type: "FLOAT", widget: "number", default: 1, min: -4, max: 4, step: 0.05, description: "How much of custom's difference to add (1: all of it)." },
  },
  outputs: { model: { type: "MODEL", description: "The merged inpainting model." } },
  async run({ inpainting, custom, base, multiplier }) {
    for (const [input, model] of [["inpainting", inpainting], ["base", base]] as const) {
      if (model.loras.length > 0 || model.merge) {
        throw new Error(`InpaintingMerge: input \`${input}\` must be a checkpoint as loaded, without LoRAs or merges; add LoRAs after the merge`);
      }
    }
    if (custom.merge) throw new Error("InpaintingMerge: input `custom` is already a merge: merge a plain checkpoint");
    return { model: { ...custom, merge: { inpainting, base, multiplier } } };
  },
});
