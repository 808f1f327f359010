/**
 * Telea's inpainting by the fast marching method (A. Telea, "An Image Inpainting Technique Based on
 * the Fast Marching Method", J. Graphics Tools 9(1), 2004), after OpenCV's cv::inpaint INPAINT_TELEA
 * (modules/photo/src/inpaint.cpp).
 *
 * The hole is filled from its edge inwards, in order of T, the distance to the edge that the fast
 * marching method computes as it goes. Each pixel becomes a weighted mean of the known pixels within
 * `radius`, each known pixel q extrapolated to p by its gradient: I(q) + ∇I(q)·(p − q). The weights
 * are OpenCV's: 1/|p − q|³ (nearness) × 1/(1 + |T(q) − T(p)|) (same level set) × |(p − q)·∇T(p)|
 * (along the normal of the front). T is signed: the known pixels near the hole get −distance from a
 * first, outward march, so the level weight works on both sides of the edge.
 *
 * Where we differ from OpenCV, on purpose:
 * - The first-order term is the paper's. OpenCV scales its central difference by 2 instead of ½ and
 *   divides the summed term by its own length, which leaves a ±√2-level nudge, so its fill goes flat
 *   (error = slope × depth); with the paper's term a ramp carries on across the hole.
 * - A filled pixel's gradient is the weighted mean of its sources' gradients, not a difference of
 *   filled values: differencing feeds each extrapolation error into the next pixel's slope, and across
 *   a hole 160 px wide that grew to errors of 150+ levels. Known pixels' gradients come from known pixels only.
 * - Every pixel of the image may be filled. OpenCV skips the first row and column and reads pixel
 *   values one place off at the image edge; here a neighbour outside the image is simply absent.
 * - Values of filled pixels stay unrounded until the end, so rounding does not compound.
 * - Only the window within radius + 1 of the hole is worked on, so cost follows the hole, not the image.
 * The fill order is OpenCV's: a min-heap on T with ties popped first in, first out, as its sorted list does.
 */
import type { Mask, RgbImage } from "../socket-types.ts";
import { dilateMask } from "../mask/square-morphology.ts";
import { maskBounds } from "../mask/mask-bounds.ts";

/** Pixel states of a march. */
const KNOWN = 0;
/** Known (or just filled) and in the heap: the front. */
const BAND = 1;
/** Not reached yet: no value and no T. */
const INSIDE = 2;

/** T of a pixel the march has not reached; OpenCV's 1.0e6f. */
const FAR = 1.0e6;
const CHANNELS = 3;

export const MAX_TELEA_RADIUS = 100;

/**
 * Fills every pixel whose mask value is above 0 (cv::inpaint's rule) from the pixels around it;
 * all other pixels come back byte-identical. The mask must have the image's size.
 */
export function teleaInpaint(image: RgbImage, mask: Mask, radius: number): RgbImage {
  const { width, height } = image;
  if (mask.width !== width || mask.height !== height) {
    throw new Error(`the mask is ${mask.width}×${mask.height} but the image is ${width}×${height}; they must match`);
  }
  if (!Number.isInteger(radius) || radius < 1 || radius > MAX_TELEA_RADIUS) {
    throw new Error(`radius must be a whole number from 1 to ${MAX_TELEA_RADIUS}, got ${radius}`);
  }
  const out = image.data.slice();
  const hole = maskBounds(mask);
  if (!hole) return { width, height, data: out };
  if (hole.count === width * height) throw new Error("the mask covers the whole image: there is no known pixel to fill from");

  // Only pixels within radius + 1 of the hole take part (sources within radius, their gradients one further),
  // so the work and memory follow the hole, not the image.
  const margin = radius + 1;
  const left = Math.max(0, hole.left - margin);
  const top = Math.max(0, hole.top - margin);
  const window = new Grid(Math.min(width, hole.right + margin) - left, Math.min(height, hole.bottom + margin) - top);
  const flags = new Uint8Array(window.width * window.height);
  const values = new Float32Array(flags.length * CHANNELS);
  for (let y = 0; y < window.height; y++) {
    for (let x = 0; x < window.width; x++) {
      const p = y * window.width + x;
      const source = (top + y) * width + left + x;
      if (mask.data[source] > 0) flags[p] = INSIDE;
      for (let c = 0; c < CHANNELS; c++) values[p * CHANNELS + c] = image.data[source * CHANNELS + c];
    }
  }
  fillHole(window, flags, values, radius);
  for (let y = 0; y < window.height; y++) {
    for (let x = 0; x < window.width; x++) {
      const target = (top + y) * width + left + x;
      if (mask.data[target] === 0) continue;
      const p = y * window.width + x;
      for (let c = 0; c < CHANNELS; c++) {
        const value = Math.round(values[p * CHANNELS + c]);
        out[target * CHANNELS + c] = value < 0 ? 0 : value > 255 ? 255 : value;
      }
    }
  }
  return { width, height, data: out };
}

/**
 * Fills the INSIDE pixels of `values` (interleaved, unrounded, so filled pixels do not pass rounding
 * errors on to the gradients that later pixels extrapolate with).
 */
function fillHole(grid: Grid, flags: Uint8Array, values: Float32Array, radius: number): void {
  const t = new Float32Array(flags.length).fill(FAR);
  const edge = edgePixels(grid, flags);
  for (const p of edge) {
    t[p] = 0;
    flags[p] = BAND;
  }
  marchOutward(grid, flags, t, edge, radius);

  const gradients = new ImageGradients(grid, flags, values);
  const disc = discOffsets(radius);
  const heap = new FrontHeap(flags.length);
  for (const p of edge) heap.push(p, 0);
  for (let popped = heap.pop(); popped >= 0; popped = heap.pop()) {
    flags[popped] = KNOWN;
    const py = grid.yOf(popped);
    const px = popped - py * grid.width;
    for (let n = 0; n < 4; n++) {
      const y = py + NEIGHBOUR_DY[n];
      const x = px + NEIGHBOUR_DX[n];
      if (!grid.contains(x, y)) continue;
      const p = y * grid.width + x;
      if (flags[p] !== INSIDE) continue;
      t[p] = arrivalTime(grid, flags, t, x, y);
      fillPixel(grid, flags, t, values, gradients, disc, x, y);
      flags[p] = BAND;
      heap.push(p, t[p]);
    }
  }
}

/** Up, left, down, right: OpenCV's neighbour order, which fixes the fill order among equal T. */
const NEIGHBOUR_DY = [-1, 0, 1, 0] as const;
const NEIGHBOUR_DX = [0, -1, 0, 1] as const;

class Grid {
  constructor(
    readonly width: number,
    readonly height: number,
  ) {}

  contains(x: number, y: number): boolean {
    return x >= 0 && y >= 0 && x < this.width && y < this.height;
  }

  yOf(p: number): number {
    return Math.floor(p / this.width);
  }
}

/** Known pixels with a hole pixel above, below, left or right, in row order (OpenCV's seeding order). */
function edgePixels(grid: Grid, flags: Uint8Array): number[] {
  const { width, height } = grid;
  const edge: number[] = [];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      if (flags[p] === INSIDE) continue;
      if (
        (y > 0 && flags[p - width] === INSIDE) ||
        (x > 0 && flags[p - 1] === INSIDE) ||
        (y < height - 1 && flags[p + width] === INSIDE) ||
        (x < width - 1 && flags[p + 1] === INSIDE)
      ) {
        edge.push(p);
      }
    }
  }
  return edge;
}

/**
 * Gives the known pixels within `radius` (chessboard) of the hole T = −(distance to the edge), by a
 * fast march outward from the edge over just those pixels (OpenCV's icvCalcFMM with negate).
 */
function marchOutward(grid: Grid, holeFlags: Uint8Array, t: Float32Array, edge: readonly number[], radius: number): void {
  const { width, height } = grid;
  const hole = new Uint8Array(holeFlags.length);
  for (let p = 0; p < hole.length; p++) if (holeFlags[p] === INSIDE) hole[p] = 255;
  const near = dilateMask({ width, height, data: hole }, radius).data;
  // In this march the pixels to reach are INSIDE; the edge starts KNOWN at 0 and the hole is KNOWN at FAR,
  // which the solver's min() passes over.
  const flags = new Uint8Array(hole.length);
  for (let p = 0; p < flags.length; p++) {
    if (near[p] !== 0 && hole[p] === 0 && holeFlags[p] !== BAND) flags[p] = INSIDE;
  }
  const heap = new FrontHeap(flags.length);
  for (const p of edge) heap.push(p, 0);
  const reached: number[] = [];
  for (let popped = heap.pop(); popped >= 0; popped = heap.pop()) {
    flags[popped] = KNOWN;
    reached.push(popped);
    const py = grid.yOf(popped);
    const px = popped - py * width;
    for (let n = 0; n < 4; n++) {
      const y = py + NEIGHBOUR_DY[n];
      const x = px + NEIGHBOUR_DX[n];
      if (!grid.contains(x, y)) continue;
      const p = y * width + x;
      if (flags[p] !== INSIDE) continue;
      t[p] = arrivalTime(grid, flags, t, x, y);
      flags[p] = BAND;
      heap.push(p, t[p]);
    }
  }
  for (const p of reached) t[p] = -t[p];
}

/** T at (x, y) from its four neighbours: the best of the four quadrant solutions (OpenCV's min4 of FastMarching_solve). */
function arrivalTime(grid: Grid, flags: Uint8Array, t: Float32Array, x: number, y: number): number {
  return Math.fround(
    Math.min(
      solveQuadrant(grid, flags, t, x, y - 1, x - 1, y),
      solveQuadrant(grid, flags, t, x, y + 1, x - 1, y),
      solveQuadrant(grid, flags, t, x, y - 1, x + 1, y),
      solveQuadrant(grid, flags, t, x, y + 1, x + 1, y),
    ),
  );
}

/** The eikonal |∇T| = 1 solved from one vertical and one horizontal neighbour; a neighbour outside the image is unreached. */
function solveQuadrant(grid: Grid, flags: Uint8Array, t: Float32Array, x1: number, y1: number, x2: number, y2: number): number {
  const inside1 = grid.contains(x1, y1);
  const inside2 = grid.contains(x2, y2);
  const p1 = y1 * grid.width + x1;
  const p2 = y2 * grid.width + x2;
  const t1 = inside1 ? t[p1] : FAR;
  const t2 = inside2 ? t[p2] : FAR;
  const known1 = inside1 && flags[p1] !== INSIDE;
  const known2 = inside2 && flags[p2] !== INSIDE;
  if (known1 && known2) {
    const difference = t1 - t2;
    if (Math.abs(difference) >= 1) return 1 + Math.min(t1, t2);
    return (t1 + t2 + Math.sqrt(2 - difference * difference)) * 0.5;
  }
  if (known1) return 1 + t1;
  if (known2) return 1 + t2;
  return 1 + Math.min(t1, t2);
}

/** One-sided or central difference of T at (x, y) along (dx, dy) over reached neighbours; 0 when neither is reached. */
function timeDifference(grid: Grid, flags: Uint8Array, t: Float32Array, x: number, y: number, dx: number, dy: number): number {
  const here = y * grid.width + x;
  const step = dy * grid.width + dx;
  const after = grid.contains(x + dx, y + dy) && flags[here + step] !== INSIDE;
  const before = grid.contains(x - dx, y - dy) && flags[here - step] !== INSIDE;
  if (after && before) return (t[here + step] - t[here - step]) * 0.5;
  if (after) return t[here + step] - t[here];
  if (before) return t[here] - t[here - step];
  return 0;
}

/**
 * ∇I per pixel and channel. A known pixel's gradient is measured once, from known neighbours only
 * (central difference, one-sided at the hole's edge); a filled pixel's is set by fillPixel to the
 * weighted mean of its sources' gradients. Differencing filled values instead feeds each pixel's
 * extrapolation error into the next pixel's slope, which grows without bound across a wide hole.
 */
class ImageGradients {
  readonly x: Float32Array;
  readonly y: Float32Array;
  /** The range of the known pixels each pixel's value comes from (a known pixel: its own value). */
  readonly low: Float32Array;
  readonly high: Float32Array;

  constructor(grid: Grid, flags: Uint8Array, values: Float32Array) {
    this.x = new Float32Array(values.length);
    this.y = new Float32Array(values.length);
    this.low = Float32Array.from(values);
    this.high = Float32Array.from(values);
    const { width, height } = grid;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const p = y * width + x;
        if (flags[p] === INSIDE) continue;
        const right = x + 1 < width && flags[p + 1] !== INSIDE;
        const left = x > 0 && flags[p - 1] !== INSIDE;
        const down = y + 1 < height && flags[p + width] !== INSIDE;
        const up = y > 0 && flags[p - width] !== INSIDE;
        for (let c = 0; c < CHANNELS; c++) {
          const i = p * CHANNELS + c;
          this.x[i] = centralOrOneSided(values, i, CHANNELS, right, left);
          this.y[i] = centralOrOneSided(values, i, width * CHANNELS, down, up);
        }
      }
    }
  }
}

/**
 * The slope at a known pixel. With both sides known it is the smaller of the two one-sided differences,
 * and 0 where they disagree in sign (the minmod limiter of TVD schemes): on a ramp that is the ramp's
 * slope, at a hard edge (a table top against a wall) it is the flat side's, so the fill does not
 * extrapolate a cliff into the hole and overshoot into black or white.
 */
function centralOrOneSided(values: Float32Array, i: number, step: number, after: boolean, before: boolean): number {
  if (after && before) {
    const forward = values[i + step] - values[i];
    const backward = values[i] - values[i - step];
    if (forward * backward <= 0) return 0;
    return Math.abs(forward) < Math.abs(backward) ? forward : backward;
  }
  if (after) return values[i + step] - values[i];
  if (before) return values[i] - values[i - step];
  return 0;
}

/** The offsets (dx, dy) = p − q of the pixels q within `radius` of p (p itself left out), with 1/|p − q|³. */
interface DiscOffsets {
  readonly dx: Int32Array;
  readonly dy: Int32Array;
  readonly nearness: Float64Array;
}

function discOffsets(radius: number): DiscOffsets {
  const dx: number[] = [];
  const dy: number[] = [];
  const nearness: number[] = [];
  for (let ry = -radius; ry <= radius; ry++) {
    for (let rx = -radius; rx <= radius; rx++) {
      const lengthSquared = rx * rx + ry * ry;
      if (lengthSquared === 0 || lengthSquared > radius * radius) continue;
      dx.push(rx);
      dy.push(ry);
      nearness.push(1 / (lengthSquared * Math.sqrt(lengthSquared)));
    }
  }
  return { dx: Int32Array.from(dx), dy: Int32Array.from(dy), nearness: Float64Array.from(nearness) };
}

/**
 * Sets hole pixel (x, y) of `values` to the weighted mean of its known neighbours extrapolated to it,
 * and its gradient to the same weighted mean of theirs.
 */
function fillPixel(
  grid: Grid,
  flags: Uint8Array,
  t: Float32Array,
  values: Float32Array,
  gradients: ImageGradients,
  disc: DiscOffsets,
  x: number,
  y: number,
): void {
  const { width, height } = grid;
  const p = y * width + x;
  const tHere = t[p];
  const gradTx = timeDifference(grid, flags, t, x, y, 1, 0);
  const gradTy = timeDifference(grid, flags, t, x, y, 0, 1);
  let weightSum = 1.0e-20;
  let sum0 = 0;
  let sum1 = 0;
  let sum2 = 0;
  let slopeX0 = 0;
  let slopeX1 = 0;
  let slopeX2 = 0;
  let slopeY0 = 0;
  let slopeY1 = 0;
  let slopeY2 = 0;
  let low0 = Infinity;
  let low1 = Infinity;
  let low2 = Infinity;
  let high0 = -Infinity;
  let high1 = -Infinity;
  let high2 = -Infinity;
  const { x: gradX, y: gradY } = gradients;
  for (let i = 0; i < disc.dx.length; i++) {
    const rx = disc.dx[i];
    const ry = disc.dy[i];
    const l = x - rx;
    const k = y - ry;
    if (l < 0 || k < 0 || l >= width || k >= height) continue;
    const q = k * width + l;
    if (flags[q] === INSIDE) continue;
    const level = 1 / (1 + Math.abs(t[q] - tHere));
    let direction = rx * gradTx + ry * gradTy;
    if (Math.abs(direction) <= 0.01) direction = 0.000001;
    const weight = Math.abs(disc.nearness[i] * level * direction);
    weightSum += weight;
    const j = q * CHANNELS;
    low0 = Math.min(low0, gradients.low[j]);
    low1 = Math.min(low1, gradients.low[j + 1]);
    low2 = Math.min(low2, gradients.low[j + 2]);
    high0 = Math.max(high0, gradients.high[j]);
    high1 = Math.max(high1, gradients.high[j + 1]);
    high2 = Math.max(high2, gradients.high[j + 2]);
    sum0 += weight * (values[j] + gradX[j] * rx + gradY[j] * ry);
    sum1 += weight * (values[j + 1] + gradX[j + 1] * rx + gradY[j + 1] * ry);
    sum2 += weight * (values[j + 2] + gradX[j + 2] * rx + gradY[j + 2] * ry);
    slopeX0 += weight * gradX[j];
    slopeX1 += weight * gradX[j + 1];
    slopeX2 += weight * gradX[j + 2];
    slopeY0 += weight * gradY[j];
    slopeY1 += weight * gradY[j + 1];
    slopeY2 += weight * gradY[j + 2];
  }
  const j = p * CHANNELS;
  const sums = [sum0, sum1, sum2];
  const lows = [low0, low1, low2];
  const highs = [high0, high1, high2];
  const slopesX = [slopeX0, slopeX1, slopeX2];
  const slopesY = [slopeY0, slopeY1, slopeY2];
  for (let c = 0; c < CHANNELS; c++) {
    const value = sums[c] / weightSum;
    // A value may go past the known pixels it comes from by a little (a ramp continues) but not by much:
    // where it would, the extrapolation stops here and the pixel carries no slope onward. The range is
    // inherited, so chains of filled pixels cannot drift past it step by step.
    const low = lows[c] - MAX_OVERSHOOT;
    const high = highs[c] + MAX_OVERSHOOT;
    const clamped = Math.min(high, Math.max(low, value));
    values[j + c] = clamped;
    gradients.low[j + c] = lows[c];
    gradients.high[j + c] = highs[c];
    gradX[j + c] = clamped === value ? slopesX[c] / weightSum : 0;
    gradY[j + c] = clamped === value ? slopesY[c] / weightSum : 0;
  }
}

/** Levels a filled value may pass the range of the pixels it is made from. */
const MAX_OVERSHOOT = 24;

/**
 * A binary min-heap of pixels keyed on T, ties broken by arrival so equal T pops first in, first
 * out, as OpenCV's sorted list does. Each pixel enters at most once per march, so `capacity` = pixel count.
 */
class FrontHeap {
  readonly #t: Float32Array;
  readonly #order: Uint32Array;
  readonly #pixel: Int32Array;
  #size = 0;
  #arrivals = 0;

  constructor(capacity: number) {
    this.#t = new Float32Array(capacity);
    this.#order = new Uint32Array(capacity);
    this.#pixel = new Int32Array(capacity);
  }

  push(pixel: number, t: number): void {
    if (this.#size === this.#pixel.length) throw new Error("FrontHeap is full: a pixel entered twice");
    let i = this.#size++;
    const order = this.#arrivals++;
    const key = Math.fround(t);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!earlier(key, order, this.#t[parent], this.#order[parent])) break;
      this.#move(parent, i);
      i = parent;
    }
    this.#t[i] = key;
    this.#order[i] = order;
    this.#pixel[i] = pixel;
  }

  /** The pixel with the least T, or −1 when empty. */
  pop(): number {
    if (this.#size === 0) return -1;
    const top = this.#pixel[0];
    const last = --this.#size;
    if (last > 0) {
      const key = this.#t[last];
      const order = this.#order[last];
      const pixel = this.#pixel[last];
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= last) break;
        const right = left + 1;
        const child = right < last && earlier(this.#t[right], this.#order[right], this.#t[left], this.#order[left]) ? right : left;
        if (!earlier(this.#t[child], this.#order[child], key, order)) break;
        this.#move(child, i);
        i = child;
      }
      this.#t[i] = key;
      this.#order[i] = order;
      this.#pixel[i] = pixel;
    }
    return top;
  }

  #move(from: number, to: number): void {
    this.#t[to] = this.#t[from];
    this.#order[to] = this.#order[from];
    this.#pixel[to] = this.#pixel[from];
  }
}

/** Whether entry (t1, order1) pops before (t2, order2). */
function earlier(t1: number, order1: number, t2: number, order2: number): boolean {
  return t1 < t2 || (t1 === t2 && order1 < order2);
}
