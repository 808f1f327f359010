import { defineNode, type ImageRef } from "../node-definition.ts";
import { asPlainBytes, toSharp } from "./sharp-conversions.ts";

/** Shows images on the node without keeping them: they go to the temp folder. */
export const PreviewImageNode = defineNode({
  type: "PreviewImage",
  category: "image",
  displayName: "Preview Image",
  description: "Shows the images on the node; they are written to the temp folder, not saved as outputs.",
  isOutput: true,
  inputs: {
    images: { type: "IMAGE" },
  },
  outputs: {},
  async run({ images }, ctx) {
    const refs: ImageRef[] = [];
    for (const image of images) {
      // Previews are thrown away, so trade file size for speed.
      const png = asPlainBytes(await toSharp(image).png({ compressionLevel: 1 }).toBuffer());
      refs.push(await ctx.storage.writeImage(png, { prefix: "preview", extension: "png", type: "temp" }));
    }
    ctx.show(refs);
    return {};
  },
});
