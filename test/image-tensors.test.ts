import { describe, expect, it } from "vitest";
import { downsampleNearest, imageToTensor, maskToTensor, tensorToImage } from "../server/engines/onnx/image-tensors.ts";

describe("pictures ↔ VAE tensors, with diffusers' arithmetic", () => {
  it("normalises bytes to [-1, 1] planes as x / 255 × 2 − 1 in float32", () => {
    const tensor = imageToTensor({ width: 2, height: 1, data: Uint8Array.of(0, 128, 255, 255, 0, 64) });
    expect(Array.from(tensor)).toEqual([-1, 1, Math.fround(2 * Math.fround(128 / 255) - 1), -1, 1, Math.fround(2 * Math.fround(64 / 255) - 1)]);
  });

  it("binarises the mask at 0.5: 128 repaints, 127 keeps", () => {
    expect(Array.from(maskToTensor({ width: 4, height: 1, data: Uint8Array.of(0, 127, 128, 255) }))).toEqual([0, 0, 1, 1]);
  });

  it("denormalises with clamping and rounds half to even like numpy", () => {
    // One pixel, planar [R, G, B]: clamped below and above, and 0 → 127.5 → 128 (even).
    expect(Array.from(tensorToImage(Float32Array.of(-3, 3, 0), 1, 1).data)).toEqual([0, 255, 128]);
    // These land exactly on .5 in float32: numpy rounds 126.5 to 126 and 100.5 to 100, where Math.round gives 127 and 101.
    const at = (k: number) => Math.fround(2 * Math.fround(k / 255) - 1);
    expect(Array.from(tensorToImage(Float32Array.of(at(126.5), at(100.5), at(252.5)), 1, 1).data)).toEqual([126, 100, 252]);
  });

  it("downsamples the mask like torch's nearest interpolation: every 8th pixel from the top-left", () => {
    const values = new Float32Array(16 * 16);
    values[0] = 1;
    values[8] = 1;
    values[7] = 1; // not sampled
    expect(Array.from(downsampleNearest(values, 16, 16, 2, 2))).toEqual([1, 1, 0, 0]);
  });
});
