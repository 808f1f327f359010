import { fromSharp, maskToSharp } from "../image/sharp-conversions.ts";
import { defineNode } from "../node-definition.ts";

export const MaskToImageNode = defineNode({
  type: "MaskToImage",
  category: "mask",
  displayName: "Mask To Image",
  description: "Turns a mask into a grey picture (R = G = B = the mask value), to save, preview or composite it.",
  inputs: {
    mask: { type: "MASK" },
  },
  outputs: {
    image: { type: "IMAGE" },
  },
  async run({ mask }) {
    // A one-band raw input is grey ("b-w"); fromSharp's conversion to sRGB copies it into three bands unchanged.
    return { image: [await fromSharp(maskToSharp(mask))] };
  },
});
