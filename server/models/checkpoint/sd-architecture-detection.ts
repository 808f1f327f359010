/**
 * The architecture of an SD 1.x model read from its weights' shapes, as ComfyUI's `model_detection.py`
 * does: channel widths, depths and the UNet's input channels come from the tensors, so a small model
 * of the same family builds as well as SD 1.5 itself.
 */
import type { SdArchitecture, TextEncoderArchitecture, UnetArchitecture, VaeArchitecture } from "../../engines/onnx/graph/architecture.ts";
import { countIndexed } from "./count-indexed.ts";
import { CheckpointError } from "./checkpoint-tensor.ts";
import type { PartWeights } from "./part-weights.ts";
import { SD1_FAMILY } from "./sd1-family.ts";

function required(weights: PartWeights, name: string, what: string): readonly number[] {
  const shape = weights.shape(name);
  if (!shape) throw new CheckpointError(weights.file, `${what}: the weight ${name} is missing, so this is not a complete SD 1.x model`);
  return shape;
}

export function detectUnet(weights: PartWeights): UnetArchitecture {
  const names = weights.names;
  const convIn = required(weights, "conv_in.weight", "UNet");
  const convOut = required(weights, "conv_out.weight", "UNet");
  const levels = countIndexed(names, "down_blocks.");
  if (levels < 1) throw new CheckpointError(weights.file, "UNet: no down blocks found");
  const blockOutChannels = Array.from({ length: levels }, (_, level) => required(weights, `down_blocks.${level}.resnets.0.conv1.weight`, "UNet")[0]);
  const layersPerBlock = countIndexed(names, "down_blocks.0.resnets.");
  for (let level = 0; level < levels; level++) {
    const hasAttention = weights.has(`down_blocks.${level}.attentions.0.proj_in.weight`);
    if (hasAttention !== (level < levels - 1)) {
      throw new CheckpointError(
        weights.file,
        `UNet: down level ${level} ${hasAttention ? "has" : "lacks"} cross-attention; SD 1.x has it on every level but the last`,
      );
    }
  }
  const contextShape = required(weights, "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight", "UNet");
  const inChannels = convIn[1];
  if (inChannels !== 9 && inChannels !== 4) {
    throw new CheckpointError(weights.file, `UNet: conv_in takes ${inChannels} channels; SD 1.x UNets take 9 (inpainting) or 4 (plain)`);
  }
  for (const width of blockOutChannels) {
    if (width % SD1_FAMILY.normGroups !== 0 || width % SD1_FAMILY.unetHeads !== 0) {
      throw new CheckpointError(weights.file, `UNet: a level of ${width} channels does not divide into ${SD1_FAMILY.normGroups} groups and ${SD1_FAMILY.unetHeads} heads`);
    }
  }
  return {
    inChannels,
    outChannels: convOut[0],
    blockOutChannels,
    layersPerBlock,
    crossAttentionDim: contextShape[1],
    heads: SD1_FAMILY.unetHeads,
    normGroups: SD1_FAMILY.normGroups,
    transformerDepth: countIndexed(names, "down_blocks.0.attentions.0.transformer_blocks."),
    sampleSize: SD1_FAMILY.unetSampleSize,
  };
}

export function detectVae(weights: PartWeights): VaeArchitecture {
  const names = weights.names;
  const levels = countIndexed(names, "encoder.down_blocks.");
  if (levels < 1) throw new CheckpointError(weights.file, "VAE: no encoder down blocks found");
  const blockOutChannels = Array.from({ length: levels }, (_, level) => required(weights, `encoder.down_blocks.${level}.resnets.0.conv1.weight`, "VAE")[0]);
  const latent = required(weights, "post_quant_conv.weight", "VAE")[0];
  required(weights, "decoder.conv_in.weight", "VAE");
  return {
    blockOutChannels,
    layersPerBlock: countIndexed(names, "encoder.down_blocks.0.resnets."),
    latentChannels: latent,
    normGroups: SD1_FAMILY.normGroups,
    sampleSize: SD1_FAMILY.vaeSampleSize,
    scalingFactor: SD1_FAMILY.vaeScalingFactor,
  };
}

export function detectTextEncoder(weights: PartWeights): TextEncoderArchitecture {
  const [vocabSize, hiddenSize] = required(weights, "text_model.embeddings.token_embedding.weight", "text encoder");
  const [maxPositions] = required(weights, "text_model.embeddings.position_embedding.weight", "text encoder");
  const layers = countIndexed(weights.names, "text_model.encoder.layers.");
  if (layers < 1) throw new CheckpointError(weights.file, "text encoder: no transformer layers found");
  const [intermediateSize] = required(weights, "text_model.encoder.layers.0.mlp.fc1.weight", "text encoder");
  if (hiddenSize % SD1_FAMILY.clipHeadWidth !== 0) {
    throw new CheckpointError(weights.file, `text encoder: width ${hiddenSize} is not a whole number of CLIP's ${SD1_FAMILY.clipHeadWidth}-wide heads`);
  }
  return {
    vocabSize,
    hiddenSize,
    intermediateSize,
    layers,
    heads: hiddenSize / SD1_FAMILY.clipHeadWidth,
    maxPositions,
    layerNormEpsilon: SD1_FAMILY.clipLayerNormEpsilon,
  };
}

export function detectArchitecture(parts: { unet: PartWeights; vae: PartWeights; textEncoder: PartWeights }): SdArchitecture {
  const architecture = { unet: detectUnet(parts.unet), vae: detectVae(parts.vae), textEncoder: detectTextEncoder(parts.textEncoder) };
  if (architecture.unet.crossAttentionDim !== architecture.textEncoder.hiddenSize) {
    throw new CheckpointError(
      parts.unet.file,
      `the UNet attends to ${architecture.unet.crossAttentionDim}-wide text but the text encoder gives ${architecture.textEncoder.hiddenSize}: not one SD 1.x model`,
    );
  }
  if (architecture.unet.outChannels !== architecture.vae.latentChannels) {
    throw new CheckpointError(parts.unet.file, `the UNet makes ${architecture.unet.outChannels}-channel latents but the VAE takes ${architecture.vae.latentChannels}`);
  }
  return architecture;
}
