// The SD 1.x UNet (diffusers' UNet2DConditionModel) as an ONNX graph, built from a checkpoint's
// weights: the engine's contract is sample [batch, in, H, W] + timestep int64 [1 or batch] +
// encoder_hidden_states [batch, sequence, context] → out_sample [batch, out, H, W].
// Down levels: CrossAttnDownBlock2D everywhere but the deepest (DownBlock2D); mid: resnet,
// transformer, resnet; up levels mirror them deepest first, concatenating the skips pushed on the way down.
import { attr, OnnxGraphBuilder } from "./onnx-graph-builder.ts";
import type { ModelWeights } from "./model-weights.ts";
import type { UnetArchitecture } from "./architecture.ts";
import { conv2d } from "./layers/conv2d.ts";
import { groupNorm } from "./layers/group-norm.ts";
import { silu } from "./layers/activations.ts";
import { resnetBlock2d } from "./layers/resnet-block.ts";
import { downsample2d, upsample2d } from "./layers/resample.ts";
import { transformer2d } from "./layers/transformer-2d.ts";
import { timestepEmbedding } from "./layers/timestep-embedding.ts";

/** The ResNets' and conv_norm_out's GroupNorm epsilon in UNet2DConditionModel (norm_eps). */
const RESNET_EPSILON = 1e-5;

/**
 * The whole UNet graph, its weights read from `weights` only when the graph is written. Works for
 * any number of levels and layers per block; every level but the deepest has cross-attention.
 * Height and width must be multiples of 2^(levels − 1) (8 latents, 64 pixels, in SD 1.5):
 * diffusers' upsample_size fallback for other sizes is not built.
 */
export function buildUnetGraph(weights: ModelWeights, arch: UnetArchitecture): OnnxGraphBuilder {
  const levels = arch.blockOutChannels.length;
  if (levels < 1) throw new Error("a UNet needs at least one level");
  const g = new OnnxGraphBuilder("unet");
  const sample = g.input("sample", "float32", ["batch", arch.inChannels, "height", "width"]);
  const timestep = g.input("timestep", "int64", ["steps"]);
  const context = g.input("encoder_hidden_states", "float32", ["batch", "sequence", arch.crossAttentionDim]);

  // Timesteps → float32, one per batch row: Expand turns one value into `batch` and leaves one per
  // row as it is, as diffusers' timesteps.expand(sample.shape[0]) does.
  const batch = g.node("Shape", [sample], { start: attr.int(0), end: attr.int(1) });
  const timesteps = g.node("Expand", [g.node("Cast", [timestep], { to: attr.int(1) /* FLOAT */ }), batch]);
  // Every ResNet applies SiLU to the embedding before its own projection: done once here.
  const temb = silu(g, timestepEmbedding(g, timesteps, weights, "time_embedding"));

  const resnet = (x: string, prefix: string): string =>
    resnetBlock2d(g, x, weights, prefix, { groups: arch.normGroups, epsilon: RESNET_EPSILON, temb });
  const transformer = (x: string, prefix: string): string =>
    transformer2d(g, x, weights, prefix, { heads: arch.heads, groups: arch.normGroups, depth: arch.transformerDepth, context });

  let h = conv2d(g, sample, weights, "conv_in");
  const skips = [h];
  for (let level = 0; level < levels; level++) {
    const deepest = level === levels - 1;
    for (let layer = 0; layer < arch.layersPerBlock; layer++) {
      h = resnet(h, `down_blocks.${level}.resnets.${layer}`);
      if (!deepest) h = transformer(h, `down_blocks.${level}.attentions.${layer}`);
      skips.push(h);
    }
    if (!deepest) {
      h = downsample2d(g, h, weights, `down_blocks.${level}.downsamplers.0`, { padAsymmetric: false });
      skips.push(h);
    }
  }

  h = resnet(h, "mid_block.resnets.0");
  h = transformer(h, "mid_block.attentions.0");
  h = resnet(h, "mid_block.resnets.1");

  // up_blocks.0 is the deepest level (UpBlock2D, no attention); each level takes one skip more than
  // its down level pushed, the extra one being the downsampler's (or conv_in's, at the top).
  for (let level = 0; level < levels; level++) {
    const deepest = level === 0;
    for (let layer = 0; layer <= arch.layersPerBlock; layer++) {
      const skip = skips.pop();
      if (skip === undefined) throw new Error("UNet skips ran out: the up path does not mirror the down path");
      h = g.node("Concat", [h, skip], { axis: attr.int(1) });
      h = resnet(h, `up_blocks.${level}.resnets.${layer}`);
      if (!deepest) h = transformer(h, `up_blocks.${level}.attentions.${layer}`);
    }
    // To the next skip's size, not simply twice: a latent side that was odd on the way down comes back whole.
    if (level < levels - 1) h = upsample2d(g, h, weights, `up_blocks.${level}.upsamplers.0`, skips[skips.length - 1]);
  }

  h = silu(g, groupNorm(g, h, weights, "conv_norm_out", { groups: arch.normGroups, epsilon: RESNET_EPSILON }));
  h = conv2d(g, h, weights, "conv_out");
  g.node("Identity", [h], {}, "out_sample");
  g.output("out_sample", "float32", ["batch", arch.outChannels, "height", "width"]);
  return g;
}
