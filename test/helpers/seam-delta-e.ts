/**
 * How visible a seam is: the CIE76 colour difference ΔE*ab across the mask's border. For every pixel on the
 * mask's edge (inside, with a 4-neighbour outside), the picture's colour `inside` pixels in from it is compared
 * with its colour `outside` pixels out, along the same row or column; the figures are the mean and the 95th
 * percentile over all such pairs. Measured on the original picture itself it gives the floor that the scene's
 * own gradient leaves; a colour cast in the repainted area adds to it.
 */
import { deltaE76, imageToLab } from "../../nodes/image/cie-lab.ts";
import type { Mask, RgbImage } from "../../nodes/socket-types.ts";

export interface SeamMeasure {
  readonly mean: number;
  readonly p95: number;
  readonly pairs: number;
}

export function seamDeltaE(picture: RgbImage, mask: Mask, depth: { inside: number; outside: number }): SeamMeasure {
  const { width, height } = picture;
  const lab = imageToLab(picture);
  const isIn = (x: number, y: number) => mask.data[y * width + x] >= 128;
  const within = (x: number, y: number) => x >= 0 && y >= 0 && x < width && y < height;
  const differences: number[] = [];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!isIn(x, y)) continue;
      for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]] as const) {
        if (!within(x + dx, y + dy) || isIn(x + dx, y + dy)) continue;
        const [ix, iy] = [x - dx * depth.inside, y - dy * depth.inside];
        const [ox, oy] = [x + dx * depth.outside, y + dy * depth.outside];
        if (!within(ix, iy) || !within(ox, oy) || !isIn(ix, iy) || isIn(ox, oy)) continue;
        differences.push(deltaE76(lab, (iy * width + ix) * 3, lab, (oy * width + ox) * 3));
      }
    }
  }
  if (differences.length === 0) throw new Error("seamDeltaE: the mask has no border with room for the depths asked");
  differences.sort((a, b) => a - b);
  return {
    mean: differences.reduce((sum, d) => sum + d, 0) / differences.length,
    p95: differences[Math.min(differences.length - 1, Math.floor(0.95 * differences.length))],
    pairs: differences.length,
  };
}
