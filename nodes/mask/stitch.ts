import sharp from "sharp";
import { requireInteger } from "../image/input-checks.ts";
import { maskFromSharp, resizeRgb } from "../image/sharp-conversions.ts";
import { defineNode } from "../node-definition.ts";
import type { Mask, RgbImage } from "../socket-types.ts";
import { asCropRegion, CROP_SOCKET, type CropRegion } from "./crop-region.ts";

const MAX_FEATHER = 256;

/**
 * The blend weights over the box: the mask's part inside the box, blurred (sigma = feather / 2, as
 * FeatherMask) with zeros around it, so no weight reaches outside the box, where there is nothing
 * inpainted to blend. With padding ≥ feather the weights have died out before the box edge.
 */
async function boxAlpha(mask: Mask, region: CropRegion, feather: number): Promise<Uint8Array> {
  const margin = feather === 0 ? 0 : Math.ceil(1.5 * feather) + 2;
  const paddedWidth = region.width + 2 * margin;
  const padded = new Uint8Array(paddedWidth * (region.height + 2 * margin));
  for (let y = 0; y < region.height; y++) {
    const from = (region.y + y) * mask.width + region.x;
    padded.set(mask.data.subarray(from, from + region.width), (y + margin) * paddedWidth + margin);
  }
  if (feather === 0) return padded;
  const blurred = await maskFromSharp(
    sharp(padded, { raw: { width: paddedWidth, height: region.height + 2 * margin, channels: 1 } }).blur(feather / 2),
  );
  const alpha = new Uint8Array(region.width * region.height);
  for (let y = 0; y < region.height; y++) {
    const from = (y + margin) * paddedWidth + margin;
    alpha.set(blurred.data.subarray(from, from + region.width), y * region.width);
  }
  return alpha;
}

/** original outside the weights, inpainted (already box-sized) inside, mixed in between; weight 0 keeps the original byte for byte. */
function blendIntoBox(original: RgbImage, patch: RgbImage, alpha: Uint8Array, region: CropRegion): RgbImage {
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

/** Puts a crop from CropToMask back into the picture it came from, through the (feathered) mask. */
export const StitchNode = defineNode({
  type: "Stitch",
  category: "mask",
  displayName: "Stitch",
  description:
    "Scales each inpainted crop back to the size of CropToMask's box and blends it into the original " +
    "there, through the full-size mask restricted to the box and feathered (Gaussian, sigma = feather / 2). " +
    "Outside the feathered mask the original is kept byte for byte. One output per inpainted image; " +
    "original may be one image (used for all) or one per inpainted image.",
  inputs: {
    original: { type: "IMAGE" },
    inpainted: { type: "IMAGE" },
    mask: { type: "MASK", description: "The full-size mask given to CropToMask (or a grown/feathered one)." },
    crop: { type: CROP_SOCKET },
    feather: { type: "INT", widget: "number", default: 8, min: 0, max: MAX_FEATHER, step: 1 },
  },
  outputs: {
    image: { type: "IMAGE" },
  },
  async run({ original: originals, inpainted, mask, crop, feather }) {
    requireInteger("Stitch", "feather", feather, 0, MAX_FEATHER);
    const region = asCropRegion("Stitch", "crop", crop);
    if (originals.length !== 1 && originals.length !== inpainted.length) {
      throw new Error(`Stitch: input \`original\` has ${originals.length} images and \`inpainted\` ${inpainted.length}; give one original or one per inpainted image`);
    }
    for (const original of originals) {
      if (original.width !== region.originalWidth || original.height !== region.originalHeight) {
        throw new Error(`Stitch: input \`original\` is ${original.width}×${original.height} but the crop was cut from a ${region.originalWidth}×${region.originalHeight} picture`);
      }
    }
    if (mask.width !== region.originalWidth || mask.height !== region.originalHeight) {
      throw new Error(`Stitch: input \`mask\` is ${mask.width}×${mask.height} but the crop was cut from a ${region.originalWidth}×${region.originalHeight} picture`);
    }
    const alpha = await boxAlpha(mask, region, feather);
    const stitched = await Promise.all(
      inpainted.map(async (crop, i) => {
        const patch = await resizeRgb(crop, region.width, region.height);
        return blendIntoBox(originals.length === 1 ? originals[0] : originals[i], patch, alpha, region);
      }),
    );
    return { image: stitched };
  },
});
