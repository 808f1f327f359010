/**
 * Where CropToMask cut its crop from, so Stitch can put the inpainted crop back: the box in the
 * original picture, the original's size, and the size the crop was scaled to for the model.
 */
export interface CropRegion {
  /** Top-left corner of the box in the original, pixels. */
  readonly x: number;
  readonly y: number;
  /** Size of the box in the original, pixels. */
  readonly width: number;
  readonly height: number;
  readonly originalWidth: number;
  readonly originalHeight: number;
  /** Size of the crop CropToMask handed on (multiples of 8). */
  readonly scaledWidth: number;
  readonly scaledHeight: number;
}

/** The socket type a CropRegion travels on, from CropToMask to Stitch. */
export const CROP_SOCKET = "CROP" as const;

const FIELDS = ["x", "y", "width", "height", "originalWidth", "originalHeight", "scaledWidth", "scaledHeight"] as const;

/** Checks a value that arrived on a CROP input (a hand-edited workflow could carry anything). */
export function asCropRegion(node: string, input: string, value: unknown): CropRegion {
  const record = value as Record<string, unknown> | null;
  for (const field of FIELDS) {
    const v = typeof record === "object" && record !== null ? record[field] : undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw new Error(`${node}: input \`${input}\` is not a crop region (field ${field} is ${String(v)}); link it to CropToMask's crop output`);
    }
  }
  const region = value as CropRegion;
  if (region.width < 1 || region.height < 1 || region.x + region.width > region.originalWidth || region.y + region.height > region.originalHeight) {
    throw new Error(`${node}: input \`${input}\` has a box (${region.x}, ${region.y}, ${region.width}×${region.height}) outside its ${region.originalWidth}×${region.originalHeight} original`);
  }
  return region;
}
