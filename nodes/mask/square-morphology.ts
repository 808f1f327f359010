/**
 * Grey-level dilation and erosion with a square structuring element of side 2r + 1: each output
 * pixel is the max (or min) of the (2r + 1)² pixels around it, so a white square of side s
 * becomes s + 2r (dilate) or s − 2r (erode).
 *
 * Why not sharp: its dilate/erode (libvips morph) is binary morphology over a 0/255 image and,
 * in sharp 0.35, inverts the result, and its cost grows with r². A square window is separable,
 * and the van Herk / Gil–Werman running max needs three comparisons per pixel whatever r is.
 *
 * Pixels outside the image do not take part (the window is clipped at the border), so a mask
 * touching the edge does not shrink from the edge, and a full mask stays full.
 */
import type { Mask } from "../socket-types.ts";

type Extreme = "max" | "min";

export function dilateMask(mask: Mask, radius: number): Mask {
  return squareFilter(mask, radius, "max");
}

export function erodeMask(mask: Mask, radius: number): Mask {
  return squareFilter(mask, radius, "min");
}

function squareFilter(mask: Mask, radius: number, extreme: Extreme): Mask {
  if (!Number.isInteger(radius) || radius < 0) throw new Error(`radius must be a whole number ≥ 0, got ${radius}`);
  const { width, height } = mask;
  if (radius === 0 || width === 0 || height === 0) return { width, height, data: mask.data.slice() };
  const rows = new Uint8Array(width * height);
  const scratch = new LineScratch(Math.max(width, height), radius);
  for (let y = 0; y < height; y++) {
    scratch.filter(mask.data, y * width, 1, width, rows, extreme);
  }
  const out = new Uint8Array(width * height);
  for (let x = 0; x < width; x++) {
    scratch.filter(rows, x, width, height, out, extreme);
  }
  return { width, height, data: out };
}

/** Buffers for one line, reused over all rows and columns. */
class LineScratch {
  readonly #radius: number;
  readonly #window: number;
  readonly #padded: Uint8Array;
  readonly #forward: Uint8Array;
  readonly #backward: Uint8Array;

  constructor(maxLength: number, radius: number) {
    this.#radius = radius;
    this.#window = 2 * radius + 1;
    // Padded to a whole number of windows so every block is full.
    const paddedLength = Math.ceil((maxLength + 2 * radius) / this.#window) * this.#window;
    this.#padded = new Uint8Array(paddedLength);
    this.#forward = new Uint8Array(paddedLength);
    this.#backward = new Uint8Array(paddedLength);
  }

  /** Filters `length` values read from `source` at start, start + stride, … into `target` at the same places. */
  filter(source: Uint8Array, start: number, stride: number, length: number, target: Uint8Array, extreme: Extreme): void {
    const r = this.#radius;
    const k = this.#window;
    const isMax = extreme === "max";
    // The neutral value stands in for pixels outside the image: it never wins.
    const neutral = isMax ? 0 : 255;
    const n = Math.ceil((length + 2 * r) / k) * k;
    const padded = this.#padded;
    const forward = this.#forward;
    const backward = this.#backward;
    padded.fill(neutral, 0, n);
    for (let i = 0; i < length; i++) padded[r + i] = source[start + i * stride];

    // forward[i]: extreme from the start of i's block to i; backward[i]: from i to the end of its block.
    for (let blockStart = 0; blockStart < n; blockStart += k) {
      const blockEnd = blockStart + k - 1;
      forward[blockStart] = padded[blockStart];
      for (let i = blockStart + 1; i <= blockEnd; i++) {
        const a = forward[i - 1];
        const b = padded[i];
        forward[i] = isMax ? (a > b ? a : b) : a < b ? a : b;
      }
      backward[blockEnd] = padded[blockEnd];
      for (let i = blockEnd - 1; i >= blockStart; i--) {
        const a = backward[i + 1];
        const b = padded[i];
        backward[i] = isMax ? (a > b ? a : b) : a < b ? a : b;
      }
    }
    // The window [i, i + k − 1] of the padded line spans at most two blocks: its tail of one, its head of the next.
    for (let i = 0; i < length; i++) {
      const a = backward[i];
      const b = forward[i + k - 1];
      target[start + i * stride] = isMax ? (a > b ? a : b) : a < b ? a : b;
    }
  }
}
