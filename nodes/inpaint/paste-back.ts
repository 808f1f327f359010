/**
 * Puts the original pixels back outside the mask after inpainting, so nothing the user did not mask
 * changes (no VAE colour shift), with the seam hidden by a blend that lies wholly inside the mask.
 * With colour matching, the repainted area first takes the original's colours as measured on the
 * ring just outside the mask (color-match.ts), so the blend joins like to like.
 */
import { runCompute } from "../../server/compute/compute-pool.ts";
import { maskFromSharp, maskToSharp, resizeMask, resizeRgb } from "../image/sharp-conversions.ts";
import type { Mask, RgbImage } from "../socket-types.ts";

export interface PasteBackOptions {
  /**
   * A soft (grey) mask: every pixel above 0 was free to change, so only the 0 pixels are the original's.
   * Otherwise the mask is cut at 50 %, as the model saw it.
   */
  readonly soft?: boolean;
  /** Match the repainted area's colours to the original's around it before blending. */
  readonly colorMatch?: boolean;
  readonly signal?: AbortSignal;
}

/** How far outside the mask colours are measured: enough pixels for steady statistics, and at least the blur. */
export function colorMatchRing(blurPixels: number): number {
  return Math.max(8, 2 * blurPixels);
}

export async function pasteBack(original: RgbImage, inpainted: RgbImage, mask: Mask, blurPixels: number, options: PasteBackOptions = {}): Promise<RgbImage> {
  const { width, height } = original;
  let result = await resizeRgb(inpainted, width, height);
  const repainted = await repaintedArea(mask, width, height, options.soft ? 1 : 128);
  if (options.colorMatch) {
    result = await runCompute("colorMatch", { reference: original, candidate: result, mask: repainted, ring: colorMatchRing(blurPixels) }, options.signal);
  }
  const blurred = await blurredInside(repainted, blurPixels, options.signal);
  return runCompute("pasteBackBlend", { original, result, repainted, blurred }, options.signal);
}

/** 255 where the mask is at least `threshold`, else 0, at the picture's size (sharp's threshold, then nearest). */
async function repaintedArea(mask: Mask, width: number, height: number, threshold: number): Promise<Mask> {
  // sharp reads threshold(0) as "no threshold"; no caller asks for it (soft masks cut at 1).
  const binary = await maskFromSharp(maskToSharp(mask).threshold(threshold));
  return resizeMask(binary, width, height, "nearest");
}

/**
 * The repainted area shrunk by the blur and blurred: a Gaussian ramp that starts at the area's edge and reaches
 * full strength `blurPixels` inside it (cut to the area in pasteBackBlend). Undefined without a blur.
 */
async function blurredInside(repainted: Mask, blurPixels: number, signal?: AbortSignal): Promise<Mask | undefined> {
  if (blurPixels <= 0) return undefined;
  const shrunk = await runCompute("growMask", { mask: repainted, pixels: -blurPixels }, signal);
  return maskFromSharp(maskToSharp(shrunk).blur(Math.max(0.3, blurPixels / 2)));
}
