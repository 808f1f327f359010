import { requireOption } from "../image/input-checks.ts";
import { channelFromSharp, toSharp } from "../image/sharp-conversions.ts";
import { defineNode } from "../node-definition.ts";

const CHANNELS = ["red", "green", "blue", "luminance"] as const;

/** ITU-R BT.601 luma, the weights LoadMask (and PIL's convert("L")) use. */
const LUMA_ROW: [number, number, number] = [0.299, 0.587, 0.114];

export const ImageToMaskNode = defineNode({
  type: "ImageToMask",
  category: "mask",
  displayName: "Image To Mask",
  description:
    "Uses one channel of a picture as a mask (white = repaint): red, green or blue as is, or luminance " +
    "0.299 R + 0.587 G + 0.114 B. A mask is one picture, so of a batch only the first image is used.",
  inputs: {
    image: { type: "IMAGE" },
    channel: { type: "STRING", widget: "combo", default: "red", options: CHANNELS },
  },
  outputs: {
    mask: { type: "MASK" },
  },
  async run({ image: batch, channel }, ctx) {
    const chosen = requireOption("ImageToMask", "channel", channel, CHANNELS);
    if (batch.length === 0) throw new Error("ImageToMask: input `image` is an empty batch");
    if (batch.length > 1) ctx.logger.warn(`ImageToMask: input \`image\` has ${batch.length} images; the mask comes from the first`);
    const image = batch[0];
    const mask =
      chosen === "luminance"
        ? await channelFromSharp(toSharp(image).recomb([LUMA_ROW, LUMA_ROW, LUMA_ROW]), 0)
        : await channelFromSharp(toSharp(image), chosen);
    return { mask };
  },
});
