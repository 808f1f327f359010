import { requireInteger } from "../image/input-checks.ts";
import { maskFromSharp, maskToSharp } from "../image/sharp-conversions.ts";
import { defineNode } from "../node-definition.ts";

const MAX_RADIUS = 256;

export const FeatherMaskNode = defineNode({
  type: "FeatherMask",
  category: "mask",
  displayName: "Feather Mask",
  description:
    "Softens the mask's edge with a Gaussian blur of sigma = radius / 2, so the fill blends into the picture. " +
    "The ramp reaches both ways across the edge (about radius pixels each side); GrowMask first to keep it outside. " +
    "0 leaves the mask unchanged.",
  inputs: {
    mask: { type: "MASK" },
    radius: { type: "INT", widget: "number", default: 8, min: 0, max: MAX_RADIUS, step: 1 },
  },
  outputs: {
    mask: { type: "MASK" },
  },
  async run({ mask, radius }) {
    requireInteger("FeatherMask", "radius", radius, 0, MAX_RADIUS);
    if (radius === 0) return { mask: { width: mask.width, height: mask.height, data: mask.data.slice() } };
    return { mask: await maskFromSharp(maskToSharp(mask).blur(radius / 2)) };
  },
});
