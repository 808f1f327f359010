import { defineNode } from "../node-definition.ts";
import { requireInteger, requireOption } from "./input-checks.ts";
import { fromSharp, toSharp } from "./sharp-conversions.ts";

const MAX_SIDE = 8192;

/** Our mode names mapped onto sharp's `fit`. */
const FIT_OF_MODE = {
  /** Exactly width × height, aspect ratio ignored (sharp "fill"). */
  stretch: "fill",
  /** As large as fits inside width × height, aspect kept: one side may come out smaller (sharp "inside"). */
  fit: "inside",
  /** Exactly width × height, aspect kept, the overflow cropped around the centre (sharp "cover"). */
  fill: "cover",
  /** Exactly width × height, aspect kept, letterboxed with black bars (sharp "contain"). */
  pad: "contain",
} as const;
const MODES = Object.keys(FIT_OF_MODE) as (keyof typeof FIT_OF_MODE)[];

const SHARP_KERNEL = { lanczos3: "lanczos3", bicubic: "cubic", bilinear: "linear", nearest: "nearest" } as const;
const KERNELS = Object.keys(SHARP_KERNEL) as (keyof typeof SHARP_KERNEL)[];

export const ResizeImageNode = defineNode({
  type: "ResizeImage",
  category: "image",
  displayName: "Resize Image",
  description:
    "Resizes every image of the batch. stretch: exactly width × height, aspect ignored; " +
    "fit: largest size inside width × height, aspect kept (one side may be smaller); " +
    "fill: exactly width × height, aspect kept, centre-cropped; pad: exactly width × height, aspect kept, black bars.",
  inputs: {
    image: { type: "IMAGE" },
    width: { type: "INT", widget: "number", default: 512, min: 1, max: MAX_SIDE, step: 1 },
    height: { type: "INT", widget: "number", default: 512, min: 1, max: MAX_SIDE, step: 1 },
    mode: { type: "STRING", widget: "combo", default: "stretch", options: MODES },
    kernel: { type: "STRING", widget: "combo", default: "lanczos3", options: KERNELS },
  },
  outputs: {
    image: { type: "IMAGE" },
  },
  async run({ image: batch, width, height, mode, kernel }) {
    requireInteger("ResizeImage", "width", width, 1, MAX_SIDE);
    requireInteger("ResizeImage", "height", height, 1, MAX_SIDE);
    const fit = FIT_OF_MODE[requireOption("ResizeImage", "mode", mode, MODES)];
    const sharpKernel = SHARP_KERNEL[requireOption("ResizeImage", "kernel", kernel, KERNELS)];
    const resized = await Promise.all(
      batch.map((image) =>
        fromSharp(toSharp(image).resize(width, height, { fit, kernel: sharpKernel, background: { r: 0, g: 0, b: 0 } })),
      ),
    );
    return { image: resized };
  },
});
