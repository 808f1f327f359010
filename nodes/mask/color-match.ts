/**
 * Colour transfer for a repainted area (Reinhard et al., "Color Transfer between Images", 2001, in CIE Lab): the
 * model's picture, on the ring of pixels just outside the mask, is compared with the original there, and every
 * repainted pixel is moved by the same per-channel map, (v − mean_result) × (spread_original / spread_result) +
 * mean_original. The ring holds the same scene in both pictures, so what differs there is the model's colour
 * cast (or a VAE's drift), which the map takes out; the area inside keeps its new content.
 */
import { labToRgb, rgbToLab } from "../image/cie-lab.ts";
import type { Mask, RgbImage } from "../socket-types.ts";
import { dilateMask } from "./square-morphology.ts";

/** Fewer ring pixels than this measure noise, not a cast: the picture is returned unchanged. */
const MIN_RING_PIXELS = 16;
/** A spread ratio outside [1/4, 4] comes from a flat ring, not a cast worth copying. */
const MAX_SPREAD_RATIO = 4;

export interface ColorMatchInput {
  /** The original picture. */
  readonly reference: RgbImage;
  /** The picture to correct, the same size (the inpainted result, or a crop's patch). */
  readonly candidate: RgbImage;
  /** The same size; above 0 = repainted. */
  readonly mask: Mask;
  /** Width of the ring measured outside the mask, and how far outside it the correction reaches, in pixels. */
  readonly ring: number;
}

/** Per Lab channel: the candidate's mean and spread on the ring, and the original's. */
export interface RingStatistics {
  readonly pixels: number;
  readonly candidateMean: readonly number[];
  readonly candidateSpread: readonly number[];
  readonly referenceMean: readonly number[];
  readonly referenceSpread: readonly number[];
}

export function matchColors({ reference, candidate, mask, ring }: ColorMatchInput): RgbImage {
  const { width, height } = candidate;
  for (const [name, picture] of [["reference", reference], ["mask", mask]] as const) {
    if (picture.width !== width || picture.height !== height) {
      throw new Error(`color match: ${name} is ${picture.width}×${picture.height}, the result ${width}×${height}`);
    }
  }
  const repainted: Mask = { width, height, data: mask.data.map((v) => (v > 0 ? 255 : 0)) };
  const near = dilateMask(repainted, Math.max(1, ring));
  const stats = ringStatistics(reference, candidate, repainted, near);
  if (!stats) return { width, height, data: candidate.data.slice() };
  const scale = [0, 1, 2].map((c) => {
    const ratio = stats.candidateSpread[c] > 1e-6 ? stats.referenceSpread[c] / stats.candidateSpread[c] : 1;
    return Math.min(MAX_SPREAD_RATIO, Math.max(1 / MAX_SPREAD_RATIO, ratio));
  });
  const out = candidate.data.slice();
  const lab = new Float64Array(3);
  for (let p = 0; p < width * height; p++) {
    // Inside the mask and over the ring: where the paste-back's blend can show the patch.
    if (near.data[p] === 0) continue;
    const i = p * 3;
    rgbToLab(candidate.data[i], candidate.data[i + 1], candidate.data[i + 2], lab, 0);
    for (let c = 0; c < 3; c++) lab[c] = (lab[c] - stats.candidateMean[c]) * scale[c] + stats.referenceMean[c];
    labToRgb(lab[0], lab[1], lab[2], out, i);
  }
  return { width, height, data: out };
}

/** Means and spreads on the ring (near the mask, outside it); undefined when the ring is too thin to measure. */
export function ringStatistics(reference: RgbImage, candidate: RgbImage, repainted: Mask, near: Mask): RingStatistics | undefined {
  const sums = { candidate: [0, 0, 0], candidateSquares: [0, 0, 0], reference: [0, 0, 0], referenceSquares: [0, 0, 0] };
  const lab = new Float64Array(6);
  let pixels = 0;
  for (let p = 0; p < repainted.data.length; p++) {
    if (near.data[p] === 0 || repainted.data[p] !== 0) continue;
    const i = p * 3;
    rgbToLab(candidate.data[i], candidate.data[i + 1], candidate.data[i + 2], lab, 0);
    rgbToLab(reference.data[i], reference.data[i + 1], reference.data[i + 2], lab, 3);
    for (let c = 0; c < 3; c++) {
      sums.candidate[c] += lab[c];
      sums.candidateSquares[c] += lab[c] * lab[c];
      sums.reference[c] += lab[3 + c];
      sums.referenceSquares[c] += lab[3 + c] * lab[3 + c];
    }
    pixels++;
  }
  if (pixels < MIN_RING_PIXELS) return undefined;
  const mean = (sum: number[]) => sum.map((s) => s / pixels);
  const spread = (sum: number[], squares: number[]) => sum.map((s, c) => Math.sqrt(Math.max(0, squares[c] / pixels - (s / pixels) ** 2)));
  return {
    pixels,
    candidateMean: mean(sums.candidate),
    candidateSpread: spread(sums.candidate, sums.candidateSquares),
    referenceMean: mean(sums.reference),
    referenceSpread: spread(sums.reference, sums.referenceSquares),
  };
}
