import { runCompute } from "../../server/compute/compute-pool.ts";
import { defineNode } from "../node-definition.ts";
import { pairBatches } from "./batch-pairs.ts";
import { BLEND_MODE_NAMES as MODES } from "./blend-pixels.ts";
import { requireOption } from "./input-checks.ts";
import { resizeRgb } from "./sharp-conversions.ts";

/** Mixes b into a, on a compute worker (blend-pixels.ts). */
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
  async run({ a, b, factor, mode }, ctx) {
    if (!Number.isFinite(factor) || factor < 0 || factor > 1) {
      throw new Error(`Blend: input \`factor\` is ${factor}; it must be a number from 0 to 1`);
    }
    const chosen = requireOption("Blend", "mode", mode, MODES);
    const pairs = pairBatches("Blend", "a", a, "b", b);
    const blended = await Promise.all(
      pairs.map(async ([backdrop, layer]) => {
        const sized = await resizeRgb(layer, backdrop.width, backdrop.height);
        return runCompute("blendPixels", { a: backdrop, b: sized, mode: chosen, factor }, ctx.signal);
      }),
    );
    return { image: blended };
  },
});
