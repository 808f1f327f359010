import { defineNode } from "../node-definition.ts";
import { requireInteger } from "./input-checks.ts";
import { fromSharp, toSharp } from "./sharp-conversions.ts";

const MAX_SIDE = 8192;

/** Cuts the box (x, y, width, height) out of every image; (0, 0) is the top-left pixel. */
export const CropImageNode = defineNode({
  type: "CropImage",
  category: "image",
  displayName: "Crop Image",
  description: "Cuts out the box whose top-left corner is (x, y), width × height pixels; the box must lie inside the image.",
  inputs: {
    image: { type: "IMAGE" },
    x: { type: "INT", widget: "number", default: 0, min: 0, max: MAX_SIDE, step: 1 },
    y: { type: "INT", widget: "number", default: 0, min: 0, max: MAX_SIDE, step: 1 },
    width: { type: "INT", widget: "number", default: 512, min: 1, max: MAX_SIDE, step: 1 },
    height: { type: "INT", widget: "number", default: 512, min: 1, max: MAX_SIDE, step: 1 },
  },
  outputs: {
    image: { type: "IMAGE" },
  },
  async run({ image: batch, x, y, width, height }) {
    requireInteger("CropImage", "x", x, 0, MAX_SIDE);
    requireInteger("CropImage", "y", y, 0, MAX_SIDE);
    requireInteger("CropImage", "width", width, 1, MAX_SIDE);
    requireInteger("CropImage", "height", height, 1, MAX_SIDE);
    const cropped = await Promise.all(
      batch.map((image) => {
        if (x + width > image.width || y + height > image.height) {
          throw new Error(
            `CropImage: the box x=${x}, y=${y}, width=${width}, height=${height} reaches outside the ` +
              `${image.width}×${image.height} image; x + width must be ≤ ${image.width} and y + height ≤ ${image.height}`,
          );
        }
        return fromSharp(toSharp(image).extract({ left: x, top: y, width, height }));
      }),
    );
    return { image: cropped };
  },
});
