import { readPictureInput } from "../image/decode-picture.ts";
import { requireOption } from "../image/input-checks.ts";
import { inputFileFingerprint, inputFileProblems } from "../image/input-file.ts";
import { channelFromSharp, maskFromSharp, maskToSharp, toSharp } from "../image/sharp-conversions.ts";
import { defineNode } from "../node-definition.ts";
import type { Mask } from "../socket-types.ts";

const CHANNELS = ["alpha", "red", "green", "blue", "luminance"] as const;
type Channel = (typeof CHANNELS)[number];

/** ITU-R BT.601 luma, the weights PIL's convert("L") uses, so masks match what Python tools produce. */
const LUMA_ROW: [number, number, number] = [0.299, 0.587, 0.114];

/** Reads one channel of a picture in the input folder as a mask (white = repaint). */
export const LoadMaskNode = defineNode({
  type: "LoadMask",
  category: "mask",
  displayName: "Load Mask",
  description:
    "Loads a mask from an image in the input folder. red/green/blue: that channel as is; luminance: " +
    "0.299 R + 0.587 G + 0.114 B; alpha: 1 − alpha like LoadImage (transparent = repaint; no alpha gives an empty mask).",
  inputs: {
    image: { type: "STRING", widget: "image", default: "", description: "File name in the input folder." },
    channel: { type: "STRING", widget: "combo", default: "luminance", options: CHANNELS },
  },
  outputs: {
    mask: { type: "MASK" },
  },
  fingerprint({ image }, ctx) {
    return inputFileFingerprint(ctx.storage, image);
  },
  check({ image }, ctx) {
    return inputFileProblems(ctx, "image", image);
  },
  async run({ image: filename, channel }, ctx) {
    const chosen: Channel = requireOption("LoadMask", "channel", channel, CHANNELS);
    const { image, alpha } = await readPictureInput(ctx.storage, "LoadMask", "image", filename);
    const { width, height } = image;
    if (chosen === "alpha") {
      // 255 − alpha by sharp's negate (native), not a loop over every pixel on the event loop.
      if (alpha) return { mask: await maskFromSharp(maskToSharp({ width, height, data: alpha }).negate()) };
      return { mask: { width, height, data: new Uint8Array(width * height) } satisfies Mask };
    }
    const mask =
      chosen === "luminance"
        ? await channelFromSharp(toSharp(image).recomb([LUMA_ROW, LUMA_ROW, LUMA_ROW]), 0)
        : await channelFromSharp(toSharp(image), chosen);
    return { mask };
  },
});
