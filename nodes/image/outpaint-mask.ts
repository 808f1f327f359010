/** PadImage's mask: where the model paints around a padded picture. */
import type { Mask } from "../socket-types.ts";

export interface Padding {
  readonly left: number;
  readonly top: number;
  readonly right: number;
  readonly bottom: number;
}

/**
 * 255 on the new border, 0 on the original, and with feather f the original's first f pixels next to a
 * padded side ramp down: the pixel d pixels in (d = 0 … f − 1) gets 255 · (f − d) / (f + 1), so the model
 * repaints the seam too. Sides not padded get no ramp; where ramps meet the larger value wins.
 */
export function outpaintMask(width: number, height: number, pad: Padding, feather: number): Mask {
  const outWidth = width + pad.left + pad.right;
  const outHeight = height + pad.top + pad.bottom;
  const data = new Uint8Array(outWidth * outHeight).fill(255);
  const ramp = (distance: number, padded: boolean) =>
    padded && distance < feather ? Math.round((255 * (feather - distance)) / (feather + 1)) : 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const value = Math.max(
        ramp(x, pad.left > 0),
        ramp(width - 1 - x, pad.right > 0),
        ramp(y, pad.top > 0),
        ramp(height - 1 - y, pad.bottom > 0),
      );
      data[(y + pad.top) * outWidth + x + pad.left] = value;
    }
  }
  return { width: outWidth, height: outHeight, data };
}
