import { runCompute } from "../../server/compute/compute-pool.ts";
import { requireInteger, requireOption } from "../image/input-checks.ts";
import { fromSharp, maskFromSharp, maskToSharp, toSharp } from "../image/sharp-conversions.ts";
import { defineNode } from "../node-definition.ts";
import { CROP_SOCKET, type CropRegion } from "./crop-region.ts";
import type { MaskBounds } from "./mask-bounds.ts";

const SHAPES = ["square", "keep aspect"] as const;
type CropShape = (typeof SHAPES)[number];
const MAX_PADDING = 2048;
const MIN_SIZE = 64;
const MAX_SIZE = 2048;
const MAX_CONTEXT = 4;

export interface CropPlanOptions {
  readonly padding: number;
  /** The padded box is scaled by this around its centre (≥ 1). */
  readonly context: number;
  readonly shape: CropShape;
  /** Longest side of the scaled crop; a multiple of 8. */
  readonly size: number;
}

/**
 * The box to cut around a mask. The mask's bounding box plus `padding` on each side, times `context`,
 * grown to a square (square) or to the aspect of the scaled size (keep aspect: long side = size, short
 * side rounded to a multiple of 8), so the crop is scaled without distortion. Centred on the mask, then
 * shifted to lie inside the picture. When the box is larger than the picture it shrinks, aspect kept,
 * but never below the mask's own bounding box; if the mask forbids that, each side is clamped to the
 * picture on its own and the model sees a slightly stretched crop, which Stitch undoes exactly.
 */
export function planCrop(bounds: MaskBounds, imageWidth: number, imageHeight: number, options: CropPlanOptions): CropRegion {
  const { padding, context, shape, size } = options;
  const maskWidth = bounds.right - bounds.left;
  const maskHeight = bounds.bottom - bounds.top;
  let boxWidth = (maskWidth + 2 * padding) * context;
  let boxHeight = (maskHeight + 2 * padding) * context;
  let scaledWidth = size;
  let scaledHeight = size;
  if (shape === "square") {
    boxWidth = boxHeight = Math.max(boxWidth, boxHeight);
  } else {
    const short = (long: number, other: number) => Math.max(8, Math.round((size * other) / long / 8) * 8);
    if (boxWidth >= boxHeight) scaledHeight = short(boxWidth, boxHeight);
    else scaledWidth = short(boxHeight, boxWidth);
    const aspect = scaledWidth / scaledHeight;
    if (boxWidth / boxHeight < aspect) boxWidth = boxHeight * aspect;
    else boxHeight = boxWidth / aspect;
  }
  const shrink = Math.min(1, imageWidth / boxWidth, imageHeight / boxHeight);
  // The small tolerance keeps float noise (264.00000001) from adding a pixel.
  const width = Math.min(imageWidth, Math.max(maskWidth, Math.ceil(boxWidth * shrink - 1e-9)));
  const height = Math.min(imageHeight, Math.max(maskHeight, Math.ceil(boxHeight * shrink - 1e-9)));
  const x = clamp(Math.floor((bounds.left + bounds.right - width) / 2), 0, imageWidth - width);
  const y = clamp(Math.floor((bounds.top + bounds.bottom - height) / 2), 0, imageHeight - height);
  return { x, y, width, height, originalWidth: imageWidth, originalHeight: imageHeight, scaledWidth, scaledHeight };
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value));
}

/** "Only masked" inpainting: cut the area around the mask and scale it to the model's size (see Stitch). */
export const CropToMaskNode = defineNode({
  type: "CropToMask",
  category: "mask",
  displayName: "Crop To Mask",
  description:
    "Cuts the area around the mask (its bounding box + padding, × context, grown to a square or to the " +
    "aspect of the output) and scales it to size (longest side, a multiple of 8), so the model works at " +
    "full resolution on the part that changes. The box stays inside the picture: it shifts at the border " +
    "and shrinks, aspect kept, when the picture is smaller. Feed crop to Stitch to put the result back.",
  inputs: {
    image: { type: "IMAGE" },
    mask: { type: "MASK" },
    padding: { type: "INT", widget: "number", default: 32, min: 0, max: MAX_PADDING, step: 1, description: "Pixels of context added on each side of the mask's bounding box." },
    context: { type: "FLOAT", widget: "number", default: 1, min: 1, max: MAX_CONTEXT, step: 0.1, description: "Scales the padded box around its centre for more surroundings." },
    shape: { type: "STRING", widget: "combo", default: "square", options: SHAPES },
    size: { type: "INT", widget: "number", default: 512, min: MIN_SIZE, max: MAX_SIZE, step: 8, description: "Longest side of the crop handed on; a multiple of 8 (512 for SD 1.5, 768 for SD 2)." },
  },
  outputs: {
    image: { type: "IMAGE", description: "The crop of every image, scaled to size." },
    mask: { type: "MASK", description: "The same crop of the mask, scaled alike." },
    crop: { type: CROP_SOCKET, description: "Where the crop came from; link to Stitch." },
  },
  async run({ image: batch, mask, padding, context, shape, size }, ctx) {
    requireInteger("CropToMask", "padding", padding, 0, MAX_PADDING);
    requireInteger("CropToMask", "size", size, MIN_SIZE, MAX_SIZE);
    if (size % 8 !== 0) throw new Error(`CropToMask: input \`size\` is ${size}; it must be a multiple of 8`);
    if (!Number.isFinite(context) || context < 1 || context > MAX_CONTEXT) {
      throw new Error(`CropToMask: input \`context\` is ${context}; it must be a number from 1 to ${MAX_CONTEXT}`);
    }
    const chosenShape = requireOption("CropToMask", "shape", shape, SHAPES);
    for (const image of batch) {
      if (image.width !== mask.width || image.height !== mask.height) {
        throw new Error(`CropToMask: input \`mask\` is ${mask.width}×${mask.height} but input \`image\` is ${image.width}×${image.height}; they must match`);
      }
    }
    const bounds = await runCompute("maskBounds", { mask }, ctx.signal);
    if (!bounds) throw new Error("CropToMask: input `mask` is empty (no pixel above 0), so there is no area to crop around");
    const region = planCrop(bounds, mask.width, mask.height, { padding, context, shape: chosenShape, size });
    const box = { left: region.x, top: region.y, width: region.width, height: region.height };
    const target = { width: region.scaledWidth, height: region.scaledHeight, fit: "fill" } as const;
    const images = await Promise.all(batch.map((image) => fromSharp(toSharp(image).extract(box).resize({ ...target, kernel: "lanczos3" }))));
    // Linear, not lanczos: a hard mask edge would ring.
    const croppedMask = await maskFromSharp(maskToSharp(mask).extract(box).resize({ ...target, kernel: "linear" }));
    return { image: images, mask: croppedMask, crop: region };
  },
});
