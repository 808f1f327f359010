/**
 * The encoder's input from a picture already resized to the 1024 frame (ResizeLongestSide.apply_image, done in
 * sharp): either H×W×3 in 0..255 for an encoder that normalizes and pads itself, or 1×3×1024×1024 normalized
 * with SAM's pixel mean and std and zero-padded bottom and right, as Sam.preprocess does.
 *
 * One table lookup per value, one channel plane at a time (as image-tensors.ts): a few milliseconds at 1024².
 */
import type { RgbImage } from "../../../nodes/socket-types.ts";
import { SAM_IMAGE_SIZE, SAM_PIXEL_MEAN, SAM_PIXEL_STD, type SamEncoderLayout } from "./sam-model.ts";

const NORMALIZED = [0, 1, 2].map((c) => Float32Array.from({ length: 256 }, (_, byte) => (byte - SAM_PIXEL_MEAN[c]) / SAM_PIXEL_STD[c]));

export function encoderInput(resized: RgbImage, layout: SamEncoderLayout): { data: Float32Array; dims: readonly number[] } {
  const { width, height, data } = resized;
  if (layout === "resized") return { data: Float32Array.from(data), dims: [height, width, 3] };
  const size = SAM_IMAGE_SIZE;
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const table = NORMALIZED[c];
    const base = c * plane;
    for (let y = 0; y < height; y++) {
      const row = base + y * size;
      for (let x = 0, j = y * width * 3 + c; x < width; x++, j += 3) out[row + x] = table[data[j]];
    }
  }
  return { data: out, dims: [1, 3, size, size] };
}
