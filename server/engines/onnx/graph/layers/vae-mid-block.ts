// diffusers' UNetMidBlock2D as the VAE's Encoder and Decoder build it: resnet, attention, resnet, with
// no time embedding and attention_head_dim = channels (one head).
import type { OnnxGraphBuilder } from "../onnx-graph-builder.ts";
import type { ModelWeights } from "../model-weights.ts";
import { resnetBlock2d } from "./resnet-block.ts";
import { spatialSelfAttention } from "./spatial-attention.ts";

export interface VaeMidBlockOptions {
  readonly groups: number;
  readonly epsilon: number;
}

/** x [N, C, h, w] → same shape, weights under `prefix` (resnets.0, attentions.0, resnets.1). */
export function vaeMidBlock(g: OnnxGraphBuilder, x: string, weights: ModelWeights, prefix: string, options: VaeMidBlockOptions): string {
  let h = resnetBlock2d(g, x, weights, `${prefix}.resnets.0`, options);
  h = spatialSelfAttention(g, h, weights, `${prefix}.attentions.0`, { ...options, heads: 1 });
  return resnetBlock2d(g, h, weights, `${prefix}.resnets.1`, options);
}
