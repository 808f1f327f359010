import type { Mask } from "../socket-types.ts";

/** The bounding box of a mask's pixels above 0 (right and bottom exclusive). */
export interface MaskBounds {
  readonly left: number;
  readonly top: number;
  readonly right: number;
  readonly bottom: number;
}

/** The box and how many pixels are above 0; undefined when the mask is empty (all 0). */
export function maskBounds(mask: Mask): (MaskBounds & { readonly count: number }) | undefined {
  let left = mask.width;
  let top = mask.height;
  let right = 0;
  let bottom = 0;
  let count = 0;
  for (let y = 0; y < mask.height; y++) {
    const row = y * mask.width;
    for (let x = 0; x < mask.width; x++) {
      if (mask.data[row + x] === 0) continue;
      count++;
      if (x < left) left = x;
      if (x >= right) right = x + 1;
      if (y < top) top = y;
      bottom = y + 1;
    }
  }
  return count === 0 ? undefined : { left, top, right, bottom, count };
}
