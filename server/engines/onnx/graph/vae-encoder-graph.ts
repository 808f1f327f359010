// The VAE encoder of an AutoencoderKL as optimum exports it: pixels in [-1, 1] → quant_conv's output,
// the diagonal Gaussian's mean ‖ logvar. Sampling (or taking the mean) and the scaling factor are
// the pipeline's business, outside the graph.
import { OnnxGraphBuilder } from "./onnx-graph-builder.ts";
import type { ModelWeights } from "./model-weights.ts";
import type { VaeArchitecture } from "./architecture.ts";
import { conv2d } from "./layers/conv2d.ts";
import { groupNorm } from "./layers/group-norm.ts";
import { silu } from "./layers/activations.ts";
import { resnetBlock2d } from "./layers/resnet-block.ts";
import { downsample2d } from "./layers/resample.ts";
import { vaeMidBlock } from "./layers/vae-mid-block.ts";

/** diffusers builds the VAE's ResNets, mid-block attention and output norm with eps 1e-6. */
export const VAE_NORM_EPSILON = 1e-6;

/** `sample` float32 [batch, 3, height, width] → `latent_parameters` [batch, 2·latent, height/f, width/f], f = 2^(levels − 1). */
export function buildVaeEncoderGraph(weights: ModelWeights, arch: VaeArchitecture): OnnxGraphBuilder {
  const g = new OnnxGraphBuilder("vae_encoder");
  const norm = { groups: arch.normGroups, epsilon: VAE_NORM_EPSILON };
  let h = conv2d(g, g.input("sample", "float32", ["batch", 3, "height", "width"]), weights, "encoder.conv_in");
  arch.blockOutChannels.forEach((_, level) => {
    for (let i = 0; i < arch.layersPerBlock; i++) h = resnetBlock2d(g, h, weights, `encoder.down_blocks.${level}.resnets.${i}`, norm);
    // Every level but the last halves the picture (DownEncoderBlock2D's add_downsample = not final).
    if (level < arch.blockOutChannels.length - 1) {
      h = downsample2d(g, h, weights, `encoder.down_blocks.${level}.downsamplers.0`, { padAsymmetric: true });
    }
  });
  h = vaeMidBlock(g, h, weights, "encoder.mid_block", norm);
  h = conv2d(g, silu(g, groupNorm(g, h, weights, "encoder.conv_norm_out", norm)), weights, "encoder.conv_out");
  g.node("Identity", [conv2d(g, h, weights, "quant_conv")], {}, "latent_parameters");
  g.output("latent_parameters", "float32", ["batch", 2 * arch.latentChannels, "latent_height", "latent_width"]);
  return g;
}
