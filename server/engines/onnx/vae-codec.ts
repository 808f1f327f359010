/**
 * The VAE's two halves on one picture (batch 1), whole or in tiles (vae-tiling.ts): the encoder's raw output
 * (mean ‖ logvar, or an in-graph sample) and the decoder's pixels in [-1, 1]. Which one runs is decided per
 * picture from the request's `vaeTiling` and the model's tile and native sizes.
 */
import type { OnnxSession } from "./onnx-session.ts";
import type { SdModel, SdModelInfo } from "./sd-model.ts";
import { runTiled, usesVaeTiles, type VaeTiling } from "./vae-tiling.ts";

/** Channels of the latent space (SD's VAE): the encoder gives twice as many when it outputs mean ‖ logvar. */
const LATENT_CHANNELS = 4;

type VaeGeometry = Pick<SdModelInfo, "vaeScaleFactor" | "vaeTileSize">;
/** A whole SdModel fits; the VAE bench opens only the two VAE sessions. */
export interface VaeEncoderPart {
  readonly info: VaeGeometry & Pick<SdModelInfo, "vaeEncoderOutput">;
  readonly vaeEncoder: Pick<OnnxSession, "run">;
}
export interface VaeDecoderPart {
  readonly info: VaeGeometry;
  readonly vaeDecoder: Pick<OnnxSession, "run">;
}

export function vaeTiled(model: SdModel, mode: VaeTiling, width: number, height: number): boolean {
  return usesVaeTiles(mode, width, height, model.info.vaeTileSize, model.info.nativeSize);
}

/** [1, 3, height, width] pixels → the encoder's output for the whole picture, [1, C, height/f, width/f]. */
export async function encodePixels(model: VaeEncoderPart, pixels: Float32Array, width: number, height: number, tiled: boolean): Promise<Float32Array> {
  const outputName = model.info.vaeEncoderOutput;
  const encode = async (data: Float32Array, w: number, h: number) =>
    (await model.vaeEncoder.run({ sample: { kind: "float", data, dims: [1, 3, h, w] } }, [outputName]))[outputName].data;
  if (!tiled) return encode(pixels, width, height);
  const { info } = model;
  const outChannels = outputName === "latent_parameters" ? 2 * LATENT_CHANNELS : LATENT_CHANNELS;
  const result = await runTiled(
    { data: pixels, channels: 3, height, width },
    { inTile: info.vaeTileSize, ratio: 1 / info.vaeScaleFactor, outChannels },
    (tile) => encode(tile.data, tile.width, tile.height),
  );
  return result.data;
}

/** [1, 4, h, w] unscaled latents → [1, 3, h·f, w·f] pixels in [-1, 1]. */
export async function decodeLatents(model: VaeDecoderPart, latents: Float32Array, latentWidth: number, latentHeight: number, tiled: boolean): Promise<Float32Array> {
  const decode = async (data: Float32Array, w: number, h: number) =>
    (await model.vaeDecoder.run({ latent_sample: { kind: "float", data, dims: [1, LATENT_CHANNELS, h, w] } }, ["sample"])).sample.data;
  if (!tiled) return decode(latents, latentWidth, latentHeight);
  const { info } = model;
  const result = await runTiled(
    { data: latents, channels: LATENT_CHANNELS, height: latentHeight, width: latentWidth },
    { inTile: info.vaeTileSize / info.vaeScaleFactor, ratio: info.vaeScaleFactor, outChannels: 3 },
    (tile) => decode(tile.data, tile.width, tile.height),
  );
  return result.data;
}
