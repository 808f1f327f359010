import { requireInteger } from "../image/input-checks.ts";
import { defineNode } from "../node-definition.ts";
import { teleaInpaint } from "./telea-inpaint.ts";

const MAX_RADIUS = 32;

/** Model-free object removal and A1111's "masked content: fill": Telea's fast-marching inpainting. */
export const ClassicalFillNode = defineNode({
  type: "ClassicalFill",
  category: "fill",
  displayName: "Classical Fill (Telea)",
  description:
    "Fills every pixel where the mask is above 0 from the pixels around it, edge inwards, by Telea's " +
    "fast marching method (as OpenCV's INPAINT_TELEA, with the paper's gradient term, so smooth ramps " +
    "carry on across the hole). No model: good for thin objects, scratches and text, and as a start for " +
    "an inpaint pass; wide holes come out smooth. radius: how far around each pixel to look. Other pixels are kept exactly.",
  inputs: {
    image: { type: "IMAGE" },
    mask: { type: "MASK" },
    radius: { type: "INT", widget: "number", default: 5, min: 1, max: MAX_RADIUS, step: 1 },
  },
  outputs: {
    image: { type: "IMAGE" },
  },
  async run({ image: batch, mask, radius }, ctx) {
    requireInteger("ClassicalFill", "radius", radius, 1, MAX_RADIUS);
    const filled = batch.map((image, i) => {
      if (image.width !== mask.width || image.height !== mask.height) {
        throw new Error(`ClassicalFill: input \`mask\` is ${mask.width}×${mask.height} but input \`image\` is ${image.width}×${image.height}; they must match`);
      }
      ctx.progress({ value: i, max: batch.length });
      try {
        return teleaInpaint(image, mask, radius);
      } catch (error) {
        throw new Error(`ClassicalFill: input \`mask\`: ${(error as Error).message}`);
      }
    });
    ctx.progress({ value: batch.length, max: batch.length });
    return { image: filled };
  },
});
