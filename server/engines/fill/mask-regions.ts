/**
 * The separate parts of a mask, as IOPaint's boxes_from_mask finds them (one box per outer contour): each part gets
 * its own crop, so two small holes far apart are filled at full resolution instead of inside one large, shrunk
 * square. Parts are labelled on a copy of the mask at most 256 pixels across (sharp averages it down, so any masked
 * pixel keeps its cell), which keeps the loop short whatever the picture's size; boxes come back in picture pixels.
 */
import { maskFromSharp, maskToSharp } from "../../../nodes/image/sharp-conversions.ts";
import type { MaskBounds } from "../../../nodes/mask/mask-bounds.ts";
import type { Mask } from "../../../nodes/socket-types.ts";

const GRID = 256;
/** Past this many parts (a speckled mask), one box around them all: that many model runs would cost more than they give. */
export const MAX_REGIONS = 8;

export async function maskRegions(mask: Mask): Promise<MaskBounds[]> {
  const scale = Math.min(1, GRID / Math.max(mask.width, mask.height));
  const grid = scale === 1 ? mask : await maskFromSharp(maskToSharp(mask).resize({ width: Math.max(1, Math.ceil(mask.width * scale)), height: Math.max(1, Math.ceil(mask.height * scale)), fit: "fill", kernel: "linear" }));
  const { width, height, data } = grid;
  const seen = new Uint8Array(width * height);
  const stack = new Int32Array(width * height);
  const boxes: MaskBounds[] = [];
  for (let start = 0; start < data.length; start++) {
    if (data[start] === 0 || seen[start]) continue;
    let left = width;
    let top = height;
    let right = 0;
    let bottom = 0;
    let size = 0;
    stack[size++] = start;
    seen[start] = 1;
    while (size > 0) {
      const at = stack[--size];
      const x = at % width;
      const y = (at - x) / width;
      if (x < left) left = x;
      if (x >= right) right = x + 1;
      if (y < top) top = y;
      if (y >= bottom) bottom = y + 1;
      // 8-connected, as cv2.findContours follows a contour.
      for (let dy = -1; dy <= 1; dy++) {
        const ny = y + dy;
        if (ny < 0 || ny >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const nx = x + dx;
          if (nx < 0 || nx >= width) continue;
          const next = ny * width + nx;
          if (data[next] === 0 || seen[next]) continue;
          seen[next] = 1;
          stack[size++] = next;
        }
      }
    }
    const coarse = {
      left: Math.floor(left / scale),
      top: Math.floor(top / scale),
      right: Math.min(mask.width, Math.ceil(right / scale)),
      bottom: Math.min(mask.height, Math.ceil(bottom / scale)),
    };
    boxes.push(scale === 1 ? coarse : exactBounds(mask, coarse));
  }
  if (boxes.length <= MAX_REGIONS) return boxes;
  return [
    {
      left: Math.min(...boxes.map((box) => box.left)),
      top: Math.min(...boxes.map((box) => box.top)),
      right: Math.max(...boxes.map((box) => box.right)),
      bottom: Math.max(...boxes.map((box) => box.bottom)),
    },
  ];
}

/** The masked pixels' own bounds inside a box found on the smaller copy (which can be a cell wider on each side). */
function exactBounds(mask: Mask, box: MaskBounds): MaskBounds {
  let left = box.right;
  let top = box.bottom;
  let right = box.left;
  let bottom = box.top;
  for (let y = box.top; y < box.bottom; y++) {
    const row = y * mask.width;
    for (let x = box.left; x < box.right; x++) {
      if (mask.data[row + x] === 0) continue;
      if (x < left) left = x;
      if (x >= right) right = x + 1;
      if (y < top) top = y;
      bottom = y + 1;
    }
  }
  // A cell that was masked only through the averaging of its neighbours' pixels keeps its coarse box.
  return right > left ? { left, top, right, bottom } : box;
}
