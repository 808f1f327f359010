/**
 * Puts the original pixels back outside the mask after inpainting, so nothing the user did not mask
 * changes (no VAE colour shift), with the seam hidden by a blend that lies wholly inside the mask.
 */
import { maskFromSharp, maskToSharp, resizeMask, resizeRgb } from "../image/sharp-conversions.ts";
import { erodeMask } from "../mask/square-morphology.ts";
import type { Mask, RgbImage } from "../socket-types.ts";

export interface PasteBackOptions {
  /**
   * A soft (grey) mask: every pixel above 0 was free to change, so only the 0 pixels are the original's.
   * Otherwise the mask is cut at 50 %, as the model saw it.
   */
  readonly soft?: boolean;
}

export async function pasteBack(original: RgbImage, inpainted: RgbImage, mask: Mask, blurPixels: number, options: PasteBackOptions = {}): Promise<RgbImage> {
  const { width, height } = original;
  const result = await resizeRgb(inpainted, width, height);
  const alpha = await blendAlpha(mask, width, height, blurPixels, options.soft ? 1 : 128);
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

/**
 * 255 deep inside the mask, 0 outside it, and a Gaussian ramp between that starts at the mask's edge and
 * reaches full strength `blurPixels` inside it: the mask is shrunk by the blur, blurred, and cut to the mask.
 * "Inside" is a mask value of at least `threshold`.
 */
export async function blendAlpha(mask: Mask, width: number, height: number, blurPixels: number, threshold = 128): Promise<Uint8Array> {
  const binary = await resizeMask({ width: mask.width, height: mask.height, data: mask.data.map((v) => (v >= threshold ? 255 : 0)) }, width, height, "nearest");
  if (blurPixels <= 0) return binary.data;
  const blurred = await maskFromSharp(maskToSharp(erodeMask(binary, blurPixels)).blur(Math.max(0.3, blurPixels / 2)));
  const alpha = new Uint8Array(width * height);
  for (let i = 0; i < alpha.length; i++) alpha[i] = binary.data[i] === 0 ? 0 : blurred.data[i];
  return alpha;
}
