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
  // Split interleaved RGBA once here, so every node downstream sees plain RGB: in libvips, off the event loop
  // (a JavaScript loop over a 16 MP picture holds it for 40–50 ms).
  const raw = { raw: { width, height, channels: 4 as const } };
  const [rgb, alpha] = await Promise.all([
    sharp(data, raw).removeAlpha().raw().toBuffer(),
    sharp(data, raw).extractChannel(3).raw().toBuffer(),
  ]);
  return { image: { width, height, data: asPlainBytes(rgb) }, alpha: asPlainBytes(alpha) };
}
