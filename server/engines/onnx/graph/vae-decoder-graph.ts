// The VAE decoder of an AutoencoderKL as optimum exports it: post_quant_conv then diffusers' Decoder.
// The latents come in already divided by the scaling factor (the pipeline does that), and the
// picture goes out in [-1, 1]-ish, unclamped.
import { OnnxGraphBuilder } from "./onnx-graph-builder.ts";
import type { ModelWeights } from "./model-weights.ts";
import type { VaeArchitecture } from "./architecture.ts";
import { conv2d } from "./layers/conv2d.ts";
import { groupNorm } from "./layers/group-norm.ts";
import { silu } from "./layers/activations.ts";
import { resnetBlock2d } from "./layers/resnet-block.ts";
import { upsample2d } from "./layers/resample.ts";
import { vaeMidBlock } from "./layers/vae-mid-block.ts";
import { VAE_NORM_EPSILON } from "./vae-encoder-graph.ts";

/** `latent_sample` float32 [batch, latent, h, w] → `sample` [batch, 3, h·f, w·f], f = 2^(levels − 1). */
export function buildVaeDecoderGraph(weights: ModelWeights, arch: VaeArchitecture): OnnxGraphBuilder {
  const g = new OnnxGraphBuilder("vae_decoder");
  const norm = { groups: arch.normGroups, epsilon: VAE_NORM_EPSILON };
  const latents = g.input("latent_sample", "float32", ["batch", arch.latentChannels, "latent_height", "latent_width"]);
  let h = conv2d(g, conv2d(g, latents, weights, "post_quant_conv"), weights, "decoder.conv_in");
  h = vaeMidBlock(g, h, weights, "decoder.mid_block", norm);
  // up_blocks.0 is the deepest level (channels reversed); each has one ResNet more than an encoder
  // level, and all but the last double the picture.
  const levels = arch.blockOutChannels.length;
  for (let level = 0; level < levels; level++) {
    for (let i = 0; i < arch.layersPerBlock + 1; i++) h = resnetBlock2d(g, h, weights, `decoder.up_blocks.${level}.resnets.${i}`, norm);
    if (level < levels - 1) h = upsample2d(g, h, weights, `decoder.up_blocks.${level}.upsamplers.0`);
  }
  h = silu(g, groupNorm(g, h, weights, "decoder.conv_norm_out", norm));
  g.node("Identity", [conv2d(g, h, weights, "decoder.conv_out")], {}, "sample");
  g.output("sample", "float32", ["batch", 3, "height", "width"]);
  return g;
}
