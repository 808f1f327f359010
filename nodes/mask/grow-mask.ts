import { runCompute } from "../../server/compute/compute-pool.ts";
import { requireInteger } from "../image/input-checks.ts";
import { defineNode } from "../node-definition.ts";

const MAX_PIXELS = 256;

export const GrowMaskNode = defineNode({
  type: "GrowMask",
  category: "mask",
  displayName: "Grow Mask",
  description:
    "Grows (positive) or shrinks (negative) the repaint area by whole pixels with a square structuring element: " +
    "each pixel takes the max (grow) or min (shrink) of the (2|p| + 1)² square around it, so a square of side s " +
    "becomes s + 2p and corners stay square. The image border does not count as keep area.",
  inputs: {
    mask: { type: "MASK" },
    pixels: { type: "INT", widget: "number", default: 8, min: -MAX_PIXELS, max: MAX_PIXELS, step: 1 },
  },
  outputs: {
    mask: { type: "MASK" },
  },
  async run({ mask, pixels }, ctx) {
    requireInteger("GrowMask", "pixels", pixels, -MAX_PIXELS, MAX_PIXELS);
    // square-morphology.ts on a compute worker.
    return { mask: await runCompute("growMask", { mask, pixels }, ctx.signal) };
  },
});
