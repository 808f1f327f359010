import sharp from "sharp";
import { runCompute } from "../../server/compute/compute-pool.ts";
import { colorMatchRing } from "../inpaint/paste-back.ts";
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
    color_match: {
      type: "BOOLEAN",
      widget: "toggle",
      default: true,
      description:
        "Before blending, give the inpainted crop the original's colours as measured on a ring just outside the mask inside the box " +
        "(mean and spread per channel in CIE Lab), so no colour step shows at the seam.",
    },
  },
  outputs: {
    image: { type: "IMAGE" },
  },
  async run({ original: originals, inpainted, mask, crop, feather, color_match }, ctx) {
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
    const boxMask = color_match ? cutMask(mask, region) : undefined;
    const stitched = await Promise.all(
      inpainted.map(async (crop, i) => {
        let patch = await resizeRgb(crop, region.width, region.height);
        const original = originals.length === 1 ? originals[0] : originals[i];
        if (boxMask) {
          const reference = cutRgb(original, region);
          patch = await runCompute("colorMatch", { reference, candidate: patch, mask: boxMask, ring: colorMatchRing(feather) }, ctx.signal);
        }
        return runCompute("blendIntoBox", { original, patch, alpha, region }, ctx.signal);
      }),
    );
    return { image: stitched };
  },
});

/** The box's rows of a picture (a copy per row; the colour match reads only the box). */
function cutRgb(picture: RgbImage, region: CropRegion): RgbImage {
  const data = new Uint8Array(region.width * region.height * 3);
  for (let y = 0; y < region.height; y++) {
    const from = ((region.y + y) * picture.width + region.x) * 3;
    data.set(picture.data.subarray(from, from + region.width * 3), y * region.width * 3);
  }
  return { width: region.width, height: region.height, data };
}

function cutMask(mask: Mask, region: CropRegion): Mask {
  const data = new Uint8Array(region.width * region.height);
  for (let y = 0; y < region.height; y++) {
    const from = (region.y + y) * mask.width + region.x;
    data.set(mask.data.subarray(from, from + region.width), y * region.width);
  }
  return { width: region.width, height: region.height, data };
}
