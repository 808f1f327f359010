/**
 * The shapes of an SD 1.x model's three networks, as the graph builders need them. Checkpoint
 * detection (server/models/checkpoint/) fills these from the tensors' shapes; the constants the
 * weights cannot tell (heads, norm groups, epsilons) are facts of the SD 1.x family.
 */
export interface UnetArchitecture {
  /** 9: an inpainting UNet (latents ‖ mask ‖ masked-image latents); 4: a plain one. */
  readonly inChannels: number;
  readonly outChannels: number;
  /** One entry per resolution level, e.g. [320, 640, 1280, 1280]; every level but the last has attention. */
  readonly blockOutChannels: readonly number[];
  /** ResNet blocks per down level (the up levels have one more), 2 in SD 1.x. */
  readonly layersPerBlock: number;
  /** Width of the text encoder's hidden states (768 in SD 1.x). */
  readonly crossAttentionDim: number;
  /** Attention heads of every transformer (8 in SD 1.x, whatever the width). */
  readonly heads: number;
  /** GroupNorm groups (32) and epsilons (1e-5 in ResNets and the transformers' GroupNorm, 1e-5 LayerNorm). */
  readonly normGroups: number;
  /** Transformer blocks per attention (1 in SD 1.x). */
  readonly transformerDepth: number;
  /** Latent side the UNet was trained at (64 in SD 1.x). */
  readonly sampleSize: number;
}

export interface VaeArchitecture {
  /** One entry per level, e.g. [128, 256, 512, 512]: a latent is 2^(levels − 1) pixels across. */
  readonly blockOutChannels: readonly number[];
  /** ResNet blocks per encoder level (the decoder has one more), 2 in SD 1.x. */
  readonly layersPerBlock: number;
  readonly latentChannels: number;
  readonly normGroups: number;
  /** Picture side the VAE was trained at (512 in SD 1.x): the tile size of tiled VAE. */
  readonly sampleSize: number;
  readonly scalingFactor: number;
}

export interface TextEncoderArchitecture {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly layers: number;
  /** hidden / 64 in CLIP ViT-L/14 (12 heads of 64 dims). */
  readonly heads: number;
  readonly maxPositions: number;
  /** CLIP's LayerNorm epsilon (1e-5). */
  readonly layerNormEpsilon: number;
}

export interface SdArchitecture {
  readonly unet: UnetArchitecture;
  readonly vae: VaeArchitecture;
  readonly textEncoder: TextEncoderArchitecture;
}
