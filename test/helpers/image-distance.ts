/** How far one RGB picture is from another: PSNR over 8-bit channels and the largest difference. */
import sharp from "sharp";

export interface ImageDistance {
  /** Infinity when identical. */
  readonly psnr: number;
  /** In grey levels, 0–255. */
  readonly maxDifference: number;
  readonly identicalPixels: number;
  readonly pixels: number;
}

export async function compareInpaintImages(oursFile: string, theirsFile: string): Promise<ImageDistance> {
  const [ours, theirs] = await Promise.all([oursFile, theirsFile].map((file) => sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true })));
  if (ours.info.width !== theirs.info.width || ours.info.height !== theirs.info.height) {
    throw new Error(`${oursFile} is ${ours.info.width}×${ours.info.height}, ${theirsFile} is ${theirs.info.width}×${theirs.info.height}`);
  }
  let squares = 0;
  let maxDifference = 0;
  let identicalPixels = 0;
  for (let p = 0; p < ours.data.length; p += 3) {
    let same = true;
    for (let c = 0; c < 3; c++) {
      const d = Math.abs(ours.data[p + c] - theirs.data[p + c]);
      squares += d * d;
      maxDifference = Math.max(maxDifference, d);
      if (d !== 0) same = false;
    }
    if (same) identicalPixels++;
  }
  const mse = squares / ours.data.length;
  return { psnr: mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse), maxDifference, identicalPixels, pixels: ours.data.length / 3 };
}
