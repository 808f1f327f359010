// diffusers' ResnetBlock2D (resnet.py) with its defaults as SD 1.x uses them: "default" time
// embedding norm (added, not scale-shift), SiLU, no dropout at inference, output_scale_factor 1.
import { int64Tensor, type OnnxGraphBuilder } from "../onnx-graph-builder.ts";
import type { ModelWeights } from "../model-weights.ts";
import { conv2d } from "./conv2d.ts";
import { groupNorm } from "./group-norm.ts";
import { linear } from "./linear.ts";
import { silu } from "./activations.ts";
import { constant } from "./constants.ts";

export interface ResnetBlockOptions {
  readonly groups: number;
  readonly epsilon: number;
  /** The time embedding after its SiLU, [N, temb_dim]; absent in the VAE (temb_channels None). */
  readonly temb?: string;
}

/** x [N, Cin, H, W] → [N, Cout, H, W] with the weights under `prefix` (norm1, conv1, time_emb_proj, norm2, conv2, conv_shortcut). */
export function resnetBlock2d(g: OnnxGraphBuilder, x: string, weights: ModelWeights, prefix: string, options: ResnetBlockOptions): string {
  const norm = { groups: options.groups, epsilon: options.epsilon };
  let h = silu(g, groupNorm(g, x, weights, `${prefix}.norm1`, norm));
  h = conv2d(g, h, weights, `${prefix}.conv1`);
  if (options.temb !== undefined) {
    // [N, Cout] → [N, Cout, 1, 1], broadcast over the picture.
    const projected = linear(g, options.temb, weights, `${prefix}.time_emb_proj`);
    h = g.node("Add", [h, g.node("Unsqueeze", [projected, constant(g, "unsqueeze_axes_2_3", () => int64Tensor([2], [2, 3]))])]);
  }
  h = silu(g, groupNorm(g, h, weights, `${prefix}.norm2`, norm));
  h = conv2d(g, h, weights, `${prefix}.conv2`);
  // The shortcut conv exists exactly when in and out channels differ (diffusers' use_in_shortcut default).
  const shortcut = weights.shape(`${prefix}.conv_shortcut.weight`) !== undefined ? conv2d(g, x, weights, `${prefix}.conv_shortcut`) : x;
  return g.node("Add", [shortcut, h]);
}
