import { DEFAULT_FILL_MARGIN } from "../../server/engines/fill/learned-fill-engine.ts";
import { requireInteger } from "../image/input-checks.ts";
import { defineNode } from "../node-definition.ts";
import type { RgbImage } from "../socket-types.ts";

const NODE = "LearnedFill";
const MAX_MARGIN = 1024;

/** Object removal with a learned model (LaMa), IOPaint's default eraser; ClassicalFill is the no-download one. */
export const LearnedFillNode = defineNode({
  type: NODE,
  category: "fill",
  displayName: "Learned Fill (LaMa)",
  description:
    "Removes what the mask covers with LaMa, a model trained to fill holes from their surroundings " +
    "(`maskflow models pull lama`, 208 MB). As IOPaint does for large pictures, it fills a square around the mask " +
    "(margin pixels of context on each side, at least the model's 512), resized to the model's size, and pastes back " +
    "only the masked pixels (a grey mask value blends), so the rest of the picture is kept exactly. " +
    "model: a folder under the models folder or a path; empty: models/lama. ClassicalFill needs no download.",
  inputs: {
    image: { type: "IMAGE" },
    mask: { type: "MASK" },
    margin: { type: "INT", widget: "number", default: DEFAULT_FILL_MARGIN, min: 0, max: MAX_MARGIN, step: 8, description: "Pixels of context around the mask's box." },
    model: { type: "STRING", widget: "text", default: "", description: "LaMa folder; empty: models/lama." },
  },
  outputs: {
    image: { type: "IMAGE" },
  },
  async run({ image: batch, mask, margin, model }, ctx) {
    requireInteger(NODE, "margin", margin, 0, MAX_MARGIN);
    const engine = ctx.engines.learnedFill;
    if (!engine) throw new Error(`${NODE}: this server has no learned-fill engine`);
    for (const image of batch) {
      if (image.width !== mask.width || image.height !== mask.height) {
        throw new Error(`${NODE}: input \`mask\` is ${mask.width}×${mask.height} but input \`image\` is ${image.width}×${image.height}; they must match`);
      }
    }
    const filled: RgbImage[] = [];
    for (const [i, image] of batch.entries()) {
      ctx.progress({ value: i, max: batch.length });
      filled.push((await engine.fill({ picture: image, mask, margin, model })).image);
    }
    ctx.progress({ value: batch.length, max: batch.length });
    return { image: filled };
  },
});
