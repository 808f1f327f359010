/**
 * Puts the original pixels back outside the mask after inpainting, so nothing the user did not mask
 * changes (no VAE colour shift), with the seam hidden by a blend that lies wholly inside the mask.
 * With colour matching, the repainted area first takes the original's colours as measured on the
 * ring just outside the mask (color-match.ts), so the blend joins like to like.
 */
import { runCompute } from "../../server/compute/compute-pool.ts";
import { maskFromSharp, maskToSharp, resizeMask, resizeRgb } from "../image/sharp-conversions.ts";
import { erodeMask } from "../mask/square-morphology.ts";
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
  const alpha = await blendAlpha(repainted, blurPixels);
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const a = alpha[i];
    for (let c = 0; c < 3; c++) {
      const k = i * 3 + c;
      data[k] = a === 0 ? original.data[k] : a === 255 ? result.data[k] : Math.round((original.data[k] * (255 - a) + result.data[k] * a) / 255);
    }
  }
  return { width, height, data };
}

/** 255 where the mask is at least `threshold`, else 0, at the picture's size. */
async function repaintedArea(mask: Mask, width: number, height: number, threshold: number): Promise<Mask> {
  return resizeMask({ width: mask.width, height: mask.height, data: mask.data.map((v) => (v >= threshold ? 255 : 0)) }, width, height, "nearest");
}

/**
 * 255 deep inside the repainted area, 0 outside it, and a Gaussian ramp between that starts at its edge and
 * reaches full strength `blurPixels` inside it: the area is shrunk by the blur, blurred, and cut to the area.
 */
export async function blendAlpha(repainted: Mask, blurPixels: number): Promise<Uint8Array> {
  if (blurPixels <= 0) return repainted.data;
  const blurred = await maskFromSharp(maskToSharp(erodeMask(repainted, blurPixels)).blur(Math.max(0.3, blurPixels / 2)));
  const alpha = new Uint8Array(repainted.data.length);
  for (let i = 0; i < alpha.length; i++) alpha[i] = repainted.data[i] === 0 ? 0 : blurred.data[i];
  return alpha;
}
