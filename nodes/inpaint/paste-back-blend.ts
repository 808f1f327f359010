import type { Mask, RgbImage } from "../socket-types.ts";

/**
 * The blend of the original and the result: the original where the repainted area is 0, else the result
 * weighted by the blurred area (255 deep inside, a ramp towards the edge). Per pixel, on the compute pool.
 */
export function pasteBackBlend(original: RgbImage, result: RgbImage, repainted: Mask, blurred: Mask | undefined): RgbImage {
  const { width, height } = original;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const a = repainted.data[i] === 0 ? 0 : blurred ? blurred.data[i] : repainted.data[i];
    for (let c = 0; c < 3; c++) {
      const k = i * 3 + c;
      data[k] = a === 0 ? original.data[k] : a === 255 ? result.data[k] : Math.round((original.data[k] * (255 - a) + result.data[k] * a) / 255);
    }
  }
  return { width, height, data };
}
