import { maskFromSharp, maskToSharp } from "../image/sharp-conversions.ts";
import { defineNode } from "../node-definition.ts";

export const InvertMaskNode = defineNode({
  type: "InvertMask",
  category: "mask",
  displayName: "Invert Mask",
  description: "Swaps repaint and keep: every value v becomes 255 − v.",
  inputs: {
    mask: { type: "MASK" },
  },
  outputs: {
    mask: { type: "MASK" },
  },
  async run({ mask }) {
    return { mask: await maskFromSharp(maskToSharp(mask).negate()) };
  },
});
