import sharp from "sharp";
import { defineNode } from "../node-definition.ts";
import { pairBatches } from "./batch-pairs.ts";
import { requireInteger } from "./input-checks.ts";
import { fromSharp, toSharp } from "./sharp-conversions.ts";

const MAX_OFFSET = 8192;

/** Pastes source onto destination at (x, y), through an optional mask. */
export const CompositeImageNode = defineNode({
  type: "Composite",
  category: "image",
  displayName: "Composite",
  description:
    "Lays source over destination with its top-left corner at (x, y), which may be negative or reach past " +
    "the edge: what falls outside the destination is cut off, and the result has the destination's size. " +
    "mask (source-sized) is the source's opacity, 255 opaque; without it the source is opaque.",
  inputs: {
    destination: { type: "IMAGE" },
    source: { type: "IMAGE" },
    x: { type: "INT", widget: "number", default: 0, min: -MAX_OFFSET, max: MAX_OFFSET, step: 1 },
    y: { type: "INT", widget: "number", default: 0, min: -MAX_OFFSET, max: MAX_OFFSET, step: 1 },
    mask: { type: "MASK", optional: true },
  },
  outputs: {
    image: { type: "IMAGE" },
  },
  async run({ destination, source, x, y, mask }) {
    requireInteger("Composite", "x", x, -MAX_OFFSET, MAX_OFFSET);
    requireInteger("Composite", "y", y, -MAX_OFFSET, MAX_OFFSET);
    const pairs = pairBatches("Composite", "destination", destination, "source", source);
    const composited = await Promise.all(
      pairs.map(async ([base, overlay]) => {
        if (mask && (mask.width !== overlay.width || mask.height !== overlay.height)) {
          throw new Error(`Composite: input \`mask\` is ${mask.width}×${mask.height} but input \`source\` is ${overlay.width}×${overlay.height}; they must match`);
        }
        // sharp refuses an overlay that pokes out of the base, so cut it to the visible part first.
        const left = Math.max(0, -x);
        const top = Math.max(0, -y);
        const width = Math.min(overlay.width, base.width - x) - left;
        const height = Math.min(overlay.height, base.height - y) - top;
        if (width <= 0 || height <= 0) return { width: base.width, height: base.height, data: base.data.slice() };
        let layer = toSharp(overlay);
        if (mask) {
          // Materialised before the extract: sharp runs its steps in its own order, and the joined band must be cut alike.
          const rgba = await layer
            .joinChannel(Buffer.from(mask.data.buffer, mask.data.byteOffset, mask.data.byteLength), { raw: { width: mask.width, height: mask.height, channels: 1 } })
            .raw()
            .toBuffer();
          layer = sharp(rgba, { raw: { width: overlay.width, height: overlay.height, channels: 4 } });
        }
        const visible = await layer.extract({ left, top, width, height }).raw().toBuffer({ resolveWithObject: true });
        const channels = visible.info.channels;
        return fromSharp(
          toSharp(base).composite([{ input: visible.data, raw: { width, height, channels }, left: x + left, top: y + top }]),
        );
      }),
    );
    return { image: composited };
  },
});
