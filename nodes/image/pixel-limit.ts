/**
 * The most pixels a picture may have, checked from its header before it is decoded: a 1 MB PNG can
 * declare 16383 × 16383 pixels, which would take gigabytes and seconds to decode and to work on.
 *
 * The default, 8192 × 8192 (64 MP), takes an 8K square and every phone or camera picture up to
 * 64 MP; decoded as RGBA it is 256 MiB, and the nodes' per-pixel steps hold a few such copies, so
 * one picture at the limit stays around 1 GiB. SD 1.5 paints 512 to 768 pixels: anything larger is
 * only cropped around the mask and pasted back. MASKFLOW_MAX_PIXELS raises or lowers it.
 */
import sharp from "sharp";

export const DEFAULT_MAX_PIXELS = 8192 * 8192;
export const MAX_PIXELS_VARIABLE = "MASKFLOW_MAX_PIXELS";

/** MASKFLOW_MAX_PIXELS when set (a whole number of at least 1), else DEFAULT_MAX_PIXELS. */
export function maxPixels(env: NodeJS.ProcessEnv = process.env): number {
  const text = env[MAX_PIXELS_VARIABLE]?.trim();
  if (!text) return DEFAULT_MAX_PIXELS;
  const value = Number(text.replaceAll("_", ""));
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new Error(`${MAX_PIXELS_VARIABLE} must be a whole number of pixels of at least 1 (e.g. ${DEFAULT_MAX_PIXELS}); got ${JSON.stringify(text)}`);
  }
  return value;
}

/** A picture with more pixels than the limit; `field` is the input or request field it came in. */
export class PixelLimitError extends Error {
  readonly status = 400;

  constructor(
    readonly field: string,
    readonly width: number,
    readonly height: number,
    readonly limit: number,
  ) {
    super(
      `${field}: the picture is ${width} × ${height} = ${(width * height).toLocaleString("en-US")} pixels; ` +
        `the limit is ${limit.toLocaleString("en-US")} pixels (${MAX_PIXELS_VARIABLE})`,
    );
    this.name = "PixelLimitError";
  }
}

/**
 * Reads a picture's size from its header (nothing is decoded) and throws PixelLimitError when it has
 * more than `limit` pixels. A file sharp cannot read at all is left for the decoder to name.
 */
export async function checkPicturePixels(
  file: Uint8Array,
  field: string,
  limit: number = maxPixels(),
): Promise<{ width: number; height: number } | undefined> {
  let width: number | undefined;
  let height: number | undefined;
  try {
    ({ width, height } = await sharp(file, { limitInputPixels: false }).metadata());
  } catch {
    return undefined;
  }
  if (width === undefined || height === undefined) return undefined;
  if (width * height > limit) throw new PixelLimitError(field, width, height, limit);
  return { width, height };
}
