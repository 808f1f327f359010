import { defineNode } from "../node-definition.ts";
import type { Mask } from "../socket-types.ts";
import { readPictureInput } from "./decode-picture.ts";
import { inputFileFingerprint, inputFileProblems } from "./input-file.ts";
import { maskFromSharp, maskToSharp } from "./sharp-conversions.ts";

/**
 * Loads a picture from the input folder as an RGB image and the mask its alpha implies.
 * ComfyUI's convention: mask = 1 − alpha, so transparent pixels (erased in a paint program) are the area to repaint.
 */
export const LoadImageNode = defineNode({
  type: "LoadImage",
  category: "image",
  displayName: "Load Image",
  description:
    "Loads an image from the input folder (upload one or place it there), upright per its EXIF orientation. " +
    "The mask is 1 − alpha: transparent pixels are white (255, repaint); an image without alpha gives an all-black mask.",
  inputs: {
    image: { type: "STRING", widget: "image", default: "", description: "File name in the input folder." },
  },
  outputs: {
    image: { type: "IMAGE", description: "The picture as RGB, a batch of one." },
    mask: { type: "MASK", description: "255 where the picture is transparent, 0 where opaque." },
  },
  fingerprint({ image }, ctx) {
    return inputFileFingerprint(ctx.storage, image);
  },
  check({ image }, ctx) {
    return inputFileProblems(ctx, "image", image);
  },
  async run({ image: filename }, ctx) {
    const { image, alpha } = await readPictureInput(ctx.storage, "LoadImage", "image", filename);
    const { width, height } = image;
    // 255 − alpha by sharp's negate (native), not a loop over every pixel on the event loop.
    const mask: Mask = alpha
      ? await maskFromSharp(maskToSharp({ width, height, data: alpha }).negate())
      : { width, height, data: new Uint8Array(width * height) };
    return { image: [image], mask };
  },
});
