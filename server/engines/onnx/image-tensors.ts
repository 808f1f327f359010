/**
 * Pictures ↔ the tensors the VAE reads and writes, with diffusers' VaeImageProcessor arithmetic
 * (float32 steps, so the same bytes give the same tensor as in Python).
 */
import type { Mask, RgbImage } from "../../../nodes/socket-types.ts";

/*
 * The pipeline runs these on the compute pool (inpaintInputTensors and tensorToImage are tasks there):
 * a few float operations per value, but at 2048² that is 12.6 million values, tens of milliseconds.
 */

/** x / 255 then 2x − 1, each rounded to float32, for every byte value. */
const IMAGE_VALUE = Float32Array.from({ length: 256 }, (_, byte) => Math.fround(2 * Math.fround(byte / 255) - 1));
/** x / 255 ≥ 0.5 (in float32) → 1, else 0, for every byte value. */
const MASK_VALUE = Float32Array.from({ length: 256 }, (_, byte) => (Math.fround(byte / 255) >= 0.5 ? 1 : 0));

/** RGB bytes → [1, 3, H, W] in [-1, 1]: x / 255 then 2x − 1, each rounded to float32. */
export function imageToTensor(image: RgbImage): Float32Array {
  const { width, height, data } = image;
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const base = c * plane;
    for (let i = 0, j = c; i < plane; i++, j += 3) out[base + i] = IMAGE_VALUE[data[j]];
  }
  return out;
}

/** Mask bytes → [1, 1, H, W] of 0 and 1: x / 255, then ≥ 0.5 → 1 (white repaints), as do_binarize does. */
export function maskToTensor(mask: Mask): Float32Array {
  const out = new Float32Array(mask.width * mask.height);
  const data = mask.data;
  for (let i = 0; i < out.length; i++) out[i] = MASK_VALUE[data[i]];
  return out;
}

/** The pipeline's three input tensors: the picture, the binarised mask, and the picture with the masked part zeroed. */
export function inpaintInputTensors(image: RgbImage, mask: Mask): { imageTensor: Float32Array; maskTensor: Float32Array; maskedImage: Float32Array } {
  const imageTensor = imageToTensor(image);
  const maskTensor = maskToTensor(mask);
  const maskedImage = new Float32Array(imageTensor.length);
  const plane = image.width * image.height;
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < plane; i++) maskedImage[c * plane + i] = maskTensor[i] < 0.5 ? imageTensor[c * plane + i] : 0;
  }
  return { imageTensor, maskTensor, maskedImage };
}

/**
 * Decoder output [3, H, W] in [-1, 1] → RGB bytes: clamp(x / 2 + 0.5, 0, 1) × 255 in float32, then rounded
 * half to even, as numpy's round() in diffusers' numpy_to_pil.
 */
export function tensorToImage(tensor: Float32Array, width: number, height: number): RgbImage {
  const plane = width * height;
  const data = new Uint8Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    const base = c * plane;
    for (let i = 0, j = c; i < plane; i++, j += 3) {
      let unit = Math.fround(Math.fround(tensor[base + i] / 2) + 0.5);
      // NaN stays NaN here and becomes 0 in the byte, as Math.min/max would leave it.
      unit = unit > 1 ? 1 : unit < 0 ? 0 : unit;
      data[j] = roundHalfEven(Math.fround(unit * 255));
    }
  }
  return { width, height, data };
}

/** torch's interpolate(mode="nearest") from [H, W] to [h, w]: source index floor(i × H / h). */
export function downsampleNearest(values: Float32Array, width: number, height: number, toWidth: number, toHeight: number): Float32Array {
  const out = new Float32Array(toWidth * toHeight);
  const scaleY = height / toHeight;
  const scaleX = width / toWidth;
  for (let y = 0; y < toHeight; y++) {
    const sy = Math.min(height - 1, Math.floor(y * scaleY));
    for (let x = 0; x < toWidth; x++) {
      out[y * toWidth + x] = values[sy * width + Math.min(width - 1, Math.floor(x * scaleX))];
    }
  }
  return out;
}

function roundHalfEven(value: number): number {
  const rounded = Math.round(value);
  return rounded - value === 0.5 && rounded % 2 !== 0 ? rounded - 1 : rounded;
}
