// diffusers' Transformer2DModel as SD 1.x uses it (continuous input, use_linear_projection=False)
// and its BasicTransformerBlock: self-attention, cross-attention to the text, GEGLU feed-forward,
// each after a LayerNorm and added back. Attention goes through one MultiHeadAttention node each.
import { attr, int64Tensor, type OnnxGraphBuilder } from "../onnx-graph-builder.ts";
import type { ModelWeights } from "../model-weights.ts";
import { multiHeadAttention } from "./attention.ts";
import { conv2d } from "./conv2d.ts";
import { groupNorm } from "./group-norm.ts";
import { layerNorm } from "./layer-norm.ts";
import { linear } from "./linear.ts";
import { gelu } from "./activations.ts";
import { constant } from "./constants.ts";

/** Transformer2DModel's GroupNorm epsilon: fixed at 1e-6 in diffusers, unlike the ResNets' 1e-5. */
const GROUP_NORM_EPSILON = 1e-6;
/** BasicTransformerBlock's LayerNorm epsilon (norm_eps default, which SD 1.x keeps). */
const LAYER_NORM_EPSILON = 1e-5;

export interface Transformer2dOptions {
  /** Attention heads (8 in SD 1.x); the head width is channels / heads. */
  readonly heads: number;
  /** GroupNorm groups before proj_in (32). */
  readonly groups: number;
  /** BasicTransformerBlocks under `${prefix}.transformer_blocks` (1 in SD 1.x). */
  readonly depth: number;
  /** The text encoder's hidden states [N, sequence, cross_attention_dim], the keys and values of attn2. */
  readonly context: string;
}

/**
 * diffusers' Attention with the default processor: to_q from `x`, to_k/to_v from `context` (x itself
 * for self-attention), heads joined back, then to_out.0 (to_out.1 is dropout). x [N, S, C] → [N, S, C].
 */
export function attentionBlock(g: OnnxGraphBuilder, x: string, context: string, weights: ModelWeights, prefix: string, heads: number): string {
  const q = linear(g, x, weights, `${prefix}.to_q`);
  const k = linear(g, context, weights, `${prefix}.to_k`);
  const v = linear(g, context, weights, `${prefix}.to_v`);
  return linear(g, multiHeadAttention(g, q, k, v, heads), weights, `${prefix}.to_out.0`);
}

/** FeedForward with GEGLU: ff.net.0.proj to twice the inner width, split into value ‖ gate, value · gelu(gate), ff.net.2. */
export function gegluFeedForward(g: OnnxGraphBuilder, x: string, weights: ModelWeights, prefix: string): string {
  const projected = linear(g, x, weights, `${prefix}.net.0.proj`);
  // torch's chunk(2, dim=-1): the first half is the value, the second the gate. Opset 17's Split
  // without a `split` input cuts into as many equal parts as it has outputs.
  const [value, gate] = g.nodeOutputs("Split", [projected], 2, { axis: attr.int(-1) });
  return linear(g, g.node("Mul", [value, gelu(g, gate)]), weights, `${prefix}.net.2`);
}

/** BasicTransformerBlock (norm_type "layer_norm", no AdaNorm): tokens [N, S, C] → [N, S, C]. */
export function basicTransformerBlock(g: OnnxGraphBuilder, x: string, context: string, weights: ModelWeights, prefix: string, heads: number): string {
  let h = x;
  const selfInput = layerNorm(g, h, weights, `${prefix}.norm1`, LAYER_NORM_EPSILON);
  h = g.node("Add", [attentionBlock(g, selfInput, selfInput, weights, `${prefix}.attn1`, heads), h]);
  const crossInput = layerNorm(g, h, weights, `${prefix}.norm2`, LAYER_NORM_EPSILON);
  h = g.node("Add", [attentionBlock(g, crossInput, context, weights, `${prefix}.attn2`, heads), h]);
  const ffInput = layerNorm(g, h, weights, `${prefix}.norm3`, LAYER_NORM_EPSILON);
  return g.node("Add", [gegluFeedForward(g, ffInput, weights, `${prefix}.ff`), h]);
}

/**
 * Transformer2DModel: x [N, C, H, W] → GroupNorm → proj_in (1×1 conv) → tokens [N, H·W, C] →
 * transformer blocks → back to [N, C, H, W] → proj_out (1×1 conv) → + x.
 */
export function transformer2d(g: OnnxGraphBuilder, x: string, weights: ModelWeights, prefix: string, options: Transformer2dOptions): string {
  const normed = groupNorm(g, x, weights, `${prefix}.norm`, { groups: options.groups, epsilon: GROUP_NORM_EPSILON });
  const projected = conv2d(g, normed, weights, `${prefix}.proj_in`);
  // [N, C, H, W] → [N, C, H·W] → [N, H·W, C]; the 0s keep N and C from the input, so the batch
  // and picture size stay symbolic. The way back reshapes to proj_in's own output shape.
  const flat = g.node("Reshape", [projected, constant(g, "reshape_flatten_spatial", () => int64Tensor([3], [0, 0, -1]))]);
  let tokens = g.node("Transpose", [flat], { perm: attr.ints([0, 2, 1]) });
  for (let i = 0; i < options.depth; i++) {
    tokens = basicTransformerBlock(g, tokens, options.context, weights, `${prefix}.transformer_blocks.${i}`, options.heads);
  }
  const channelsFirst = g.node("Transpose", [tokens], { perm: attr.ints([0, 2, 1]) });
  const spatial = g.node("Reshape", [channelsFirst, g.node("Shape", [projected])]);
  return g.node("Add", [conv2d(g, spatial, weights, `${prefix}.proj_out`), x]);
}
