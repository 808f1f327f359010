/**
 * The arithmetic of the Blend node, byte by byte on typed arrays. Not sharp's composite: sharp takes
 * the mix amount only as an alpha channel, which rounds factor to 1/255 and goes through premultiplied floats.
 */
import type { RgbImage } from "../socket-types.ts";

/**
 * Blend modes on values in 0 … 1, a the backdrop and b the layer, as the W3C Compositing spec
 * (and Photoshop, GIMP) define them.
 */
const BLEND_MODES = {
  normal: (_a: number, b: number) => b,
  multiply: (a: number, b: number) => a * b,
  screen: (a: number, b: number) => a + b - a * b,
  overlay: (a: number, b: number) => hardLight(b, a),
  hard_light: (a: number, b: number) => hardLight(a, b),
  soft_light: (a: number, b: number) => softLight(a, b),
  darken: (a: number, b: number) => Math.min(a, b),
  lighten: (a: number, b: number) => Math.max(a, b),
  difference: (a: number, b: number) => Math.abs(a - b),
  add: (a: number, b: number) => Math.min(1, a + b),
  subtract: (a: number, b: number) => Math.max(0, a - b),
} as const;
export type BlendMode = keyof typeof BLEND_MODES;
export const BLEND_MODE_NAMES = Object.keys(BLEND_MODES) as BlendMode[];

function hardLight(a: number, b: number): number {
  return b <= 0.5 ? 2 * a * b : 1 - 2 * (1 - a) * (1 - b);
}

function softLight(a: number, b: number): number {
  if (b <= 0.5) return a - (1 - 2 * b) * a * (1 - a);
  const d = a <= 0.25 ? ((16 * a - 12) * a + 4) * a : Math.sqrt(a);
  return a + (2 * b - 1) * (d - a);
}

/** mode(a, b) × 255 for every pair of bytes, so a picture costs one lookup per value. */
function modeTable(mode: BlendMode): Float64Array {
  const table = new Float64Array(256 * 256);
  const blend = BLEND_MODES[mode];
  for (let a = 0; a < 256; a++) {
    for (let b = 0; b < 256; b++) table[a * 256 + b] = blend(a / 255, b / 255) * 255;
  }
  return table;
}

/** a + (mode(a, b) − a) × factor, rounded: factor 0 gives a exactly, factor 1 gives mode(a, b). b has a's size. */
export function blendPixels(a: RgbImage, b: RgbImage, mode: BlendMode, factor: number): RgbImage {
  const table = modeTable(mode);
  const out = new Uint8Array(a.data.length);
  for (let i = 0; i < out.length; i++) {
    const va = a.data[i];
    const value = Math.round(va + (table[va * 256 + b.data[i]] - va) * factor);
    out[i] = value < 0 ? 0 : value > 255 ? 255 : value;
  }
  return { width: a.width, height: a.height, data: out };
}
