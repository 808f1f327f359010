import { runCompute } from "../../server/compute/compute-pool.ts";
import { defineNode } from "../node-definition.ts";
import { requireInteger } from "./input-checks.ts";
import type { Padding } from "./outpaint-mask.ts";
import { fromSharp, toSharp } from "./sharp-conversions.ts";

const MAX_PAD = 2048;
const MAX_FEATHER = 512;

/**
 * Extra padding that makes `size + before + after` a multiple of 8: on the `after` side (right,
 * bottom) unless only the `before` side was padded, so no new strip appears where none was asked for
 * when it can be helped.
 */
function roundUpToEight(size: number, before: number, after: number): [number, number] {
  const extra = (8 - ((size + before + after) % 8)) % 8;
  return before > 0 && after === 0 ? [before + extra, after] : [before, after + extra];
}

/** Outpainting: grows the canvas and says where the model should paint. */
export const PadImageNode = defineNode({
  type: "PadImage",
  category: "image",
  displayName: "Pad Image (Outpaint)",
  description:
    "Adds left/top/right/bottom pixels around every image for outpainting. The new area repeats the " +
    "image's edge pixels outwards (so the model starts from the right colours, not a flat grey). The mask is " +
    "255 on the new area and 0 on the original, ramping into the original over feather pixels so the seam " +
    "is repainted too. multiple_of_8 adds up to 7 more pixels (right/bottom, or left/top when only those were padded).",
  inputs: {
    image: { type: "IMAGE" },
    left: { type: "INT", widget: "number", default: 0, min: 0, max: MAX_PAD, step: 8 },
    top: { type: "INT", widget: "number", default: 0, min: 0, max: MAX_PAD, step: 8 },
    right: { type: "INT", widget: "number", default: 128, min: 0, max: MAX_PAD, step: 8 },
    bottom: { type: "INT", widget: "number", default: 0, min: 0, max: MAX_PAD, step: 8 },
    feather: { type: "INT", widget: "number", default: 16, min: 0, max: MAX_FEATHER, step: 1 },
    multiple_of_8: { type: "BOOLEAN", widget: "toggle", default: false, description: "Round the padded size up to a multiple of 8." },
  },
  outputs: {
    image: { type: "IMAGE" },
    mask: { type: "MASK" },
  },
  async run({ image: batch, left, top, right, bottom, feather, multiple_of_8: roundToEight }, ctx) {
    for (const [name, value] of Object.entries({ left, top, right, bottom })) requireInteger("PadImage", name, value, 0, MAX_PAD);
    requireInteger("PadImage", "feather", feather, 0, MAX_FEATHER);
    if (batch.length === 0) throw new Error("PadImage: input `image` is an empty batch");
    const { width, height } = batch[0];
    if (batch.some((image) => image.width !== width || image.height !== height)) {
      throw new Error("PadImage: the images of input `image` differ in size; one mask fits only one size");
    }
    let pad: Padding = { left, top, right, bottom };
    if (roundToEight) {
      const [l, r] = roundUpToEight(width, left, right);
      const [t, b] = roundUpToEight(height, top, bottom);
      pad = { left: l, top: t, right: r, bottom: b };
    }
    const [padded, mask] = await Promise.all([
      Promise.all(batch.map((image) => fromSharp(toSharp(image).extend({ ...pad, extendWith: "copy" })))),
      runCompute("outpaintMask", { width, height, pad, feather }, ctx.signal),
    ]);
    return { image: padded, mask };
  },
});
