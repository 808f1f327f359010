import { requireInteger } from "../image/input-checks.ts";
import { maskFromSharp, maskToSharp } from "../image/sharp-conversions.ts";
import { defineNode } from "../node-definition.ts";

export const ThresholdMaskNode = defineNode({
  type: "ThresholdMask",
  category: "mask",
  displayName: "Threshold Mask",
  description: "Makes a soft mask hard: values ≥ threshold become 255 (repaint), the others 0.",
  inputs: {
    mask: { type: "MASK" },
    threshold: { type: "INT", widget: "number", default: 128, min: 0, max: 255, step: 1 },
  },
  outputs: {
    mask: { type: "MASK" },
  },
  async run({ mask, threshold }) {
    requireInteger("ThresholdMask", "threshold", threshold, 0, 255);
    if (threshold === 0) {
      // Every value is ≥ 0; and sharp reads threshold(0) as "no threshold", so it cannot say this itself.
      return { mask: { width: mask.width, height: mask.height, data: new Uint8Array(mask.data.length).fill(255) } };
    }
    return { mask: await maskFromSharp(maskToSharp(mask).threshold(threshold)) };
  },
});
