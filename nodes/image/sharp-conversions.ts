/**
 * The one place where our socket values meet sharp: RgbImage / Mask are raw interleaved bytes,
 * sharp reads and writes them as `raw` pixels, so no codec round trip happens between nodes.
 */
import sharp, { type ResizeOptions, type Sharp } from "sharp";

type Kernel = NonNullable<ResizeOptions["kernel"]>;
import type { Mask, RgbImage } from "../socket-types.ts";

/** A sharp pipeline over an RGB image's pixels. */
export function toSharp(image: RgbImage): Sharp {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } });
}

/** Runs a pipeline and collects 8-bit RGB; an alpha channel the pipeline produced is dropped. */
export async function fromSharp(pipeline: Sharp): Promise<RgbImage> {
  const { data, info } = await pipeline
    .removeAlpha()
    .toColourspace("srgb")
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) {
    throw new Error(`expected 3 channels from sharp, got ${info.channels}`);
  }
  return { width: info.width, height: info.height, data: asPlainBytes(data) };
}

/** A sharp pipeline over a mask's pixels (one band). */
export function maskToSharp(mask: Mask): Sharp {
  return sharp(mask.data, { raw: { width: mask.width, height: mask.height, channels: 1 } });
}

/**
 * Runs a single-band pipeline (one begun by maskToSharp) and collects its 8-bit band. sharp writes
 * raw output as sRGB by default, which would triple the band; "b-w" keeps one band, values unchanged.
 * A colour pipeline would come back as its luminance: take a colour band with channelFromSharp instead.
 */
export async function maskFromSharp(pipeline: Sharp): Promise<Mask> {
  const { data, info } = await pipeline
    .removeAlpha()
    .toColourspace("b-w")
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 1) {
    throw new Error(`expected 1 channel from sharp, got ${info.channels}`);
  }
  return { width: info.width, height: info.height, data: asPlainBytes(data) };
}

/**
 * Runs a pipeline and collects one of its bands as a mask. sharp keeps a single extractChannel and
 * applies it after the other operations (after recomb, too), so it is set here, last.
 */
export async function channelFromSharp(pipeline: Sharp, channel: 0 | 1 | 2 | 3 | "red" | "green" | "blue" | "alpha"): Promise<Mask> {
  const { data, info } = await pipeline.extractChannel(channel).raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
  if (info.channels !== 1) {
    throw new Error(`expected 1 channel from sharp, got ${info.channels}`);
  }
  return { width: info.width, height: info.height, data: asPlainBytes(data) };
}

/** A picture stretched to width × height (the same object when it already has that size). */
export async function resizeRgb(image: RgbImage, width: number, height: number, kernel: Kernel = "lanczos3"): Promise<RgbImage> {
  if (image.width === width && image.height === height) return image;
  return fromSharp(toSharp(image).resize({ width, height, fit: "fill", kernel }));
}

/** A mask stretched to width × height (the same object when it already has that size). */
export async function resizeMask(mask: Mask, width: number, height: number, kernel: Kernel = "lanczos3"): Promise<Mask> {
  if (mask.width === width && mask.height === height) return mask;
  return maskFromSharp(maskToSharp(mask).resize({ width, height, fit: "fill", kernel }));
}

/** A Uint8Array view of a Buffer, so values compare and serialise as plain bytes. */
export function asPlainBytes(buffer: Uint8Array): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}
