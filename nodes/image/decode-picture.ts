/** Decoding an image file into our pixel types: upright, 8-bit sRGB, alpha kept apart. */
import sharp from "sharp";
import type { NodeStorage } from "../node-definition.ts";
import type { RgbImage } from "../socket-types.ts";
import { readInputFile } from "./input-file.ts";
import { checkPicturePixels, maxPixels, PixelLimitError } from "./pixel-limit.ts";
import { asPlainBytes } from "./sharp-conversions.ts";

export interface DecodedPicture {
  readonly image: RgbImage;
  /** One byte per pixel, 255 = opaque; undefined when the file has no alpha channel. */
  readonly alpha: Uint8Array | undefined;
}

/** Reads and decodes the picture a node's file-name input names; every failure names the node, the input and the file. */
export async function readPictureInput(storage: NodeStorage, node: string, input: string, filename: string): Promise<DecodedPicture> {
  const file = await readInputFile(storage, node, input, filename);
  try {
    return await decodePicture(file, `${node}: input \`${input}\` ("${filename}")`);
  } catch (error) {
    if (error instanceof PixelLimitError) throw error;
    throw new Error(`${node}: input \`${input}\` names "${filename}", which is not an image sharp can read (${(error as Error).message})`);
  }
}

/**
 * Any format sharp reads (first page of multi-page files); EXIF orientation applied. A picture over
 * the pixel limit (MASKFLOW_MAX_PIXELS) is refused from its header, before anything is decoded;
 * `field` names where it came from in that error.
 */
export async function decodePicture(file: Uint8Array, field = "picture"): Promise<DecodedPicture> {
  const limit = maxPixels();
  await checkPicturePixels(file, field, limit);
  // limitInputPixels makes libvips refuse it too, for any header the check above could not read.
  const { data, info } = await sharp(file, { limitInputPixels: limit })
    .rotate()
    .toColourspace("srgb")
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  const { width, height, channels } = info;
  if (channels === 3) {
    return { image: { width, height, data: asPlainBytes(data) }, alpha: undefined };
  }
  if (channels !== 4) {
    throw new Error(`decodePicture: unexpected ${channels} channels after conversion to sRGB`);
  }
  // sharp hands back interleaved RGBA; split it once here so every node downstream sees plain RGB.
  const pixels = width * height;
  const rgb = new Uint8Array(pixels * 3);
  const alpha = new Uint8Array(pixels);
  for (let i = 0; i < pixels; i++) {
    rgb[3 * i] = data[4 * i];
    rgb[3 * i + 1] = data[4 * i + 1];
    rgb[3 * i + 2] = data[4 * i + 2];
    alpha[i] = data[4 * i + 3];
  }
  return { image: { width, height, data: rgb }, alpha };
}
