// The VAE's self-attention over a feature map (diffusers' Attention with group_norm, residual_connection
// and AttnProcessor2_0 on a 4-D input): every pixel is a token. At the lowest VAE resolution of a
// 1024² picture that is 16,384 tokens, so the scores go through MultiHeadAttention's tiled path and
// are never materialised.
import { attr, int64Tensor, type OnnxGraphBuilder } from "../onnx-graph-builder.ts";
import type { ModelWeights } from "../model-weights.ts";
import { multiHeadAttention } from "./attention.ts";
import { constant } from "./constants.ts";
import { groupNorm } from "./group-norm.ts";
import { linear } from "./linear.ts";

export interface SpatialAttentionOptions {
  readonly groups: number;
  readonly epsilon: number;
  readonly heads: number;
}

/**
 * x [N, C, H, W] → x + to_out(attention(to_q, to_k, to_v of group_norm(x) as [N, H·W, C])), with the
 * weights under `prefix` (group_norm, to_q, to_k, to_v, to_out.0); rescale_output_factor 1.
 */
export function spatialSelfAttention(g: OnnxGraphBuilder, x: string, weights: ModelWeights, prefix: string, options: SpatialAttentionOptions): string {
  // GroupNorm of [N, C, H·W] (diffusers' order) is GroupNorm of [N, C, H, W]: normalise first, then flatten.
  const normalized = groupNorm(g, x, weights, `${prefix}.group_norm`, options);
  const flat = g.node("Reshape", [normalized, constant(g, "shape_n_c_flat", () => int64Tensor([3], [0, 0, -1]))]);
  const tokens = g.node("Transpose", [flat], { perm: attr.ints([0, 2, 1]) });
  const q = linear(g, tokens, weights, `${prefix}.to_q`);
  const k = linear(g, tokens, weights, `${prefix}.to_k`);
  const v = linear(g, tokens, weights, `${prefix}.to_v`);
  const attended = linear(g, multiHeadAttention(g, q, k, v, options.heads), weights, `${prefix}.to_out.0`);
  const channelsFirst = g.node("Transpose", [attended], { perm: attr.ints([0, 2, 1]) });
  return g.node("Add", [g.node("Reshape", [channelsFirst, g.node("Shape", [x])]), x]);
}
