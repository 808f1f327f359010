/**
 * Where a learned fill looks: IOPaint's crop strategy for pictures larger than the model. The mask's bounding box
 * with a margin of context on every side, made square (the model's input is square, so nothing is stretched
 * unless the picture itself is narrower than the square), never smaller than the model's own side (so a small
 * hole in a large picture is filled at full resolution), clamped inside the picture.
 */
import type { MaskBounds } from "../../../nodes/mask/mask-bounds.ts";

export interface CropBox {
  readonly left: number;
  readonly top: number;
  readonly width: number;
  readonly height: number;
}

function placed(low: number, high: number, length: number, total: number): number {
  const centred = Math.round((low + high - length) / 2);
  // Inside the picture, and covering [low, high) (length ≥ high − low always holds).
  return Math.max(0, Math.min(total - length, Math.min(low, Math.max(high - length, centred))));
}

export function cropAroundMask(bounds: MaskBounds, margin: number, width: number, height: number, modelSize: number): CropBox {
  const side = Math.max(bounds.right - bounds.left, bounds.bottom - bounds.top) + 2 * margin;
  const square = Math.max(side, modelSize);
  const cropWidth = Math.min(square, width);
  const cropHeight = Math.min(square, height);
  return {
    left: placed(bounds.left, bounds.right, cropWidth, width),
    top: placed(bounds.top, bounds.bottom, cropHeight, height),
    width: cropWidth,
    height: cropHeight,
  };
}
