import { runCompute } from "../../server/compute/compute-pool.ts";
import { requireInteger, requireOption } from "../image/input-checks.ts";
import { defineNode } from "../node-definition.ts";
import type { RgbImage } from "../socket-types.ts";

const MAX_RADIUS = 32;
/** "patch" first: the default, and the one that keeps a table top or a horizon straight across a removed object. */
const METHODS = ["patch", "telea"] as const;

/** Model-free object removal and A1111's "masked content: fill", by exemplar patches or Telea's fast marching. */
export const ClassicalFillNode = defineNode({
  type: "ClassicalFill",
  category: "fill",
  displayName: "Classical Fill",
  description:
    "Fills every pixel where the mask is above 0 from the pixels around it, edge inwards, with no model. " +
    "method patch (Criminisi's exemplar-based fill): copies patches of the picture around the hole, edges " +
    "that run into it first, so lines and flat areas carry on sharp; best for removing objects. " +
    "method telea (Telea's fast marching, as OpenCV's INPAINT_TELEA with the paper's gradient term): a " +
    "smooth blend, so ramps carry on across the hole; good for thin objects, scratches and text, but across a " +
    "wide hole edges blur into streaks. radius: patch: half the patch side (patches are 2·radius + 1 square); " +
    "telea: how far around each pixel to look. Other pixels are kept exactly.",
  inputs: {
    image: { type: "IMAGE" },
    mask: { type: "MASK" },
    method: { type: "STRING", widget: "combo", default: "patch", options: METHODS, description: "patch: copy patches (sharp, for object removal); telea: smooth diffusion (thin marks)." },
    radius: { type: "INT", widget: "number", default: 5, min: 1, max: MAX_RADIUS, step: 1 },
  },
  outputs: {
    image: { type: "IMAGE" },
  },
  async run({ image: batch, mask, method, radius }, ctx) {
    requireInteger("ClassicalFill", "radius", radius, 1, MAX_RADIUS);
    const chosen = requireOption("ClassicalFill", "method", method, METHODS);
    for (const image of batch) {
      if (image.width !== mask.width || image.height !== mask.height) {
        throw new Error(`ClassicalFill: input \`mask\` is ${mask.width}×${mask.height} but input \`image\` is ${image.width}×${image.height}; they must match`);
      }
    }
    const filled: RgbImage[] = [];
    for (const [i, image] of batch.entries()) {
      ctx.progress({ value: i, max: batch.length });
      // exemplar-inpaint.ts or telea-inpaint.ts on a compute worker; an interrupt ends the worker at once.
      try {
        filled.push(await runCompute("classicalFill", { image, mask, radius, method: chosen }, ctx.signal));
      } catch (error) {
        if (ctx.signal.aborted) throw error;
        throw new Error(`ClassicalFill: input \`mask\`: ${(error as Error).message}`);
      }
    }
    ctx.progress({ value: batch.length, max: batch.length });
    return { image: filled };
  },
});
