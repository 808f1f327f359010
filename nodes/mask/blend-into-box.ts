/** Stitch's last step: the inpainted crop mixed back into the full picture. */
import type { RgbImage } from "../socket-types.ts";
import type { CropRegion } from "./crop-region.ts";

/** original outside the weights, inpainted (already box-sized) inside, mixed in between; weight 0 keeps the original byte for byte. */
export function blendIntoBox(original: RgbImage, patch: RgbImage, alpha: Uint8Array, region: CropRegion): RgbImage {
  const out = original.data.slice();
  for (let y = 0; y < region.height; y++) {
    for (let x = 0; x < region.width; x++) {
      const a = alpha[y * region.width + x];
      if (a === 0) continue;
      const o = ((region.y + y) * original.width + region.x + x) * 3;
      const p = (y * region.width + x) * 3;
      for (let c = 0; c < 3; c++) {
        out[o + c] = Math.round((original.data[o + c] * (255 - a) + patch.data[p + c] * a) / 255);
      }
    }
  }
  return { width: original.width, height: original.height, data: out };
}
