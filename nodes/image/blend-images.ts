import { defineNode } from "../node-definition.ts";
import type { RgbImage } from "../socket-types.ts";
import { pairBatches } from "./batch-pairs.ts";
import { requireOption } from "./input-checks.ts";
import { resizeRgb } from "./sharp-conversions.ts";

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
type BlendMode = keyof typeof BLEND_MODES;
const MODES = Object.keys(BLEND_MODES) as BlendMode[];

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

/** a + (mode(a, b) − a) × factor, rounded: factor 0 gives a exactly, factor 1 gives mode(a, b). */
function blendPixels(a: RgbImage, b: RgbImage, table: Float64Array, factor: number): RgbImage {
  const out = new Uint8Array(a.data.length);
  for (let i = 0; i < out.length; i++) {
    const va = a.data[i];
    const value = Math.round(va + (table[va * 256 + b.data[i]] - va) * factor);
    out[i] = value < 0 ? 0 : value > 255 ? 255 : value;
  }
  return { width: a.width, height: a.height, data: out };
}

/**
 * Mixes b into a. Done on typed arrays, not sharp's composite: sharp takes the mix amount only as an
 * alpha channel, which rounds factor to 1/255 and goes through premultiplied floats.
 */
export const BlendImagesNode = defineNode({
  type: "Blend",
  category: "image",
  displayName: "Blend",
  description:
    "Mixes b into a: a + (mode(a, b) − a) × factor, so factor 0 gives a and factor 1 the mode's full result " +
    "(b itself for normal). Modes as in image editors: normal, multiply, screen, overlay, hard_light, soft_light, " +
    "darken, lighten, difference, add, subtract. b is resized to a's size (lanczos3, aspect ignored) when they differ.",
  inputs: {
    a: { type: "IMAGE" },
    b: { type: "IMAGE" },
    factor: { type: "FLOAT", widget: "slider", default: 0.5, min: 0, max: 1, step: 0.01 },
    mode: { type: "STRING", widget: "combo", default: "normal", options: MODES },
  },
  outputs: {
    image: { type: "IMAGE" },
  },
  async run({ a, b, factor, mode }) {
    if (!Number.isFinite(factor) || factor < 0 || factor > 1) {
      throw new Error(`Blend: input \`factor\` is ${factor}; it must be a number from 0 to 1`);
    }
    const table = modeTable(requireOption("Blend", "mode", mode, MODES));
    const pairs = pairBatches("Blend", "a", a, "b", b);
    const blended = await Promise.all(
      pairs.map(async ([backdrop, layer]) => {
        const sized = await resizeRgb(layer, backdrop.width, backdrop.height);
        return blendPixels(backdrop, sized, table, factor);
      }),
    );
    return { image: blended };
  },
});
