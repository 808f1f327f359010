// Down- and upsampling between resolution levels (diffusers' downsampling.py / upsampling.py, conv variants).
import { attr, float32Tensor, int64Tensor, type OnnxGraphBuilder } from "../onnx-graph-builder.ts";
import type { ModelWeights } from "../model-weights.ts";
import { conv2d } from "./conv2d.ts";
import { constant } from "./constants.ts";

export interface DownsampleOptions {
  /**
   * true in the VAE: Downsample2D(padding=0) pads right and bottom by one, then a 3×3 stride-2 conv
   * with no padding; false in the UNet: the conv pads 1 on every side. The VAE's zero pad is folded
   * into Conv's asymmetric pads (same values as F.pad with zeros, one op fewer).
   */
  readonly padAsymmetric: boolean;
}

/** x [N, C, H, W] → [N, C, H/2, W/2] through `${prefix}.conv` (stride 2). */
export function downsample2d(g: OnnxGraphBuilder, x: string, weights: ModelWeights, prefix: string, options: DownsampleOptions): string {
  const pads: [number, number, number, number] = options.padAsymmetric ? [0, 0, 1, 1] : [1, 1, 1, 1];
  return conv2d(g, x, weights, `${prefix}.conv`, { stride: 2, pads });
}

/**
 * x [N, C, H, W] → [N, C, 2H, 2W]: nearest ×2 then `${prefix}.conv`. torch's F.interpolate(mode="nearest")
 * takes source index floor(dst · in/out), which is Resize's "asymmetric" coordinates with "floor" rounding.
 */
export function upsample2d(g: OnnxGraphBuilder, x: string, weights: ModelWeights, prefix: string, like?: string): string {
  const nearest = {
    mode: attr.string("nearest"),
    coordinate_transformation_mode: attr.string("asymmetric"),
    nearest_mode: attr.string("floor"),
  };
  let upsampled: string;
  if (like === undefined) {
    const scales = constant(g, "resize_scales_2x", () => float32Tensor([4], [1, 1, 2, 2]));
    upsampled = g.node("Resize", [x, "", scales], nearest);
  } else {
    // diffusers passes the next skip's size (upsample_size) when a latent side is odd on the way down: doubling
    // would then be one off, so the target is that skip's height and width.
    const batchAndChannels = g.node("Slice", [g.node("Shape", [x]), constant(g, "slice_0", () => int64Tensor([1], [0])), constant(g, "slice_2", () => int64Tensor([1], [2]))]);
    const sides = g.node("Slice", [g.node("Shape", [like]), constant(g, "slice_2", () => int64Tensor([1], [2])), constant(g, "slice_4", () => int64Tensor([1], [4]))]);
    const sizes = g.node("Concat", [batchAndChannels, sides], { axis: attr.int(0) });
    upsampled = g.node("Resize", [x, "", "", sizes], nearest);
  }
  return conv2d(g, upsampled, weights, `${prefix}.conv`);
}
