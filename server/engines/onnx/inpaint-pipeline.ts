/**
 * diffusers' StableDiffusionInpaintPipeline on onnxruntime: prompt → text embeddings, image and mask →
 * masked-image latents, a seeded torch-compatible generator drawing noise in diffusers' order, the
 * denoising loop with classifier-free guidance, and the VAE decode. A 9-channel UNet gets
 * [latents, mask, masked-image latents]; a 4-channel UNet gets latents and has the known region
 * blended back after every step (diffusers' legacy path).
 */
import { resizeMask, resizeRgb } from "../../../nodes/image/sharp-conversions.ts";
import type { Mask, RgbImage } from "../../../nodes/socket-types.ts";
import { heldBeforeStep, holdToOriginal, latentChangeMask } from "./differential-diffusion.ts";
import { runCompute } from "../../compute/compute-pool.ts";
import { downsampleNearest } from "./image-tensors.ts";
import { latentPreview } from "./latent-preview.ts";
import { promptEmbedding } from "./prompt-embeddings.ts";
import { createScheduler, isSchedulerName, SCHEDULER_NAMES } from "./schedulers/index.ts";
import { type Scheduler, timestepsForStrength } from "./schedulers/scheduler.ts";
import type { SdModel } from "./sd-model.ts";
import { TorchGenerator } from "./torch-generator.ts";
import { decodeLatents, encodePixels, vaeTiled } from "./vae-codec.ts";
import { VAE_TILING_MODES, type VaeTiling } from "./vae-tiling.ts";

export interface InpaintRequest {
  readonly image: RgbImage;
  readonly mask: Mask;
  readonly prompt: string;
  readonly negativePrompt: string;
  readonly scheduler: string;
  readonly steps: number;
  readonly guidance: number;
  readonly strength: number;
  /** A concrete torch seed; -1 is resolved before the pipeline. */
  readonly seed: bigint;
  readonly samples: number;
  readonly width: number;
  readonly height: number;
  /**
   * What the masked area starts from when strength < 1 (A1111's "masked content"): the picture's own
   * latents ("original", diffusers' behaviour), fresh noise ("latent noise") or zeros ("latent nothing").
   * "fill" is done on the picture before it gets here.
   */
  readonly maskedContent?: LatentMaskedContent;
  /**
   * Soft inpainting (differential diffusion, see differential-diffusion.ts): grey mask values are how much
   * each place may change, not a yes/no at 0.5. The UNet's own mask input stays the binarised one.
   */
  readonly softMask?: boolean;
  /**
   * VAE encode and decode in overlapping tiles (diffusers' tiled_encode / tiled_decode), which bounds the VAE's
   * memory by one tile: "auto" (the default) from twice the model's native size on either side (1024 px for
   * SD 1.5), "on" whenever the picture is larger than one tile (512 px), "off" never.
   */
  readonly vaeTiling?: VaeTiling;
}

export const LATENT_MASKED_CONTENT = ["original", "latent noise", "latent nothing"] as const;
export type LatentMaskedContent = (typeof LATENT_MASKED_CONTENT)[number];

export interface InpaintHooks {
  readonly signal?: AbortSignal;
  /** After every denoising step, with a small preview of the current latents. */
  onStep?(step: number, total: number, preview: RgbImage): void;
  /** Things the user should know that are not errors (a mask resized to the image). */
  onNote?(message: string): void;
}

export interface InpaintResult {
  readonly images: RgbImage[];
  readonly seed: bigint;
  /** Denoising steps run (fewer than requested when strength < 1). */
  readonly steps: number;
  readonly totalMs: number;
  /** Time spent inside onnxruntime. */
  readonly onnxMs: number;
  /** Shapes of the UNet's sample input, for tests and benchmarks. */
  readonly unetSampleDims: readonly number[];
  /** Whether the VAE ran in tiles (the request's vaeTiling and the picture's size decide). */
  readonly vaeTiled: boolean;
}

export class InpaintRequestError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = "InpaintRequestError";
  }
}

/**
 * Every check that can fail before a model runs. `vaeScaleFactor` is the model's pixels per latent
 * (8 for SD 1.5, the assumption before a model is loaded): width and height must be multiples of it.
 */
export function checkInpaintRequest(request: InpaintRequest, vaeScaleFactor = 8): void {
  const { width, height, steps, strength, guidance, samples } = request;
  for (const [field, value] of [["width", width], ["height", height]] as const) {
    if (!Number.isInteger(value) || value < 64 || value > 2048 || value % vaeScaleFactor !== 0) {
      const why = vaeScaleFactor === 8 ? "(512 or 768 for SD 1.5)" : `(this model's VAE makes one latent of ${vaeScaleFactor}×${vaeScaleFactor} pixels)`;
      throw new InpaintRequestError(field, `must be a multiple of ${vaeScaleFactor} from 64 to 2048 ${why}, got ${value}`);
    }
  }
  if (!Number.isInteger(steps) || steps < 1 || steps > 500) throw new InpaintRequestError("steps", `must be a whole number from 1 to 500, got ${steps}`);
  if (!(strength > 0 && strength <= 1)) throw new InpaintRequestError("strength", `must be more than 0 and at most 1, got ${strength}`);
  if (!(guidance >= 0 && guidance <= 50)) throw new InpaintRequestError("guidance", `must be from 0 to 50, got ${guidance}`);
  if (!Number.isInteger(samples) || samples < 1 || samples > 4) throw new InpaintRequestError("samples", `must be 1, 2, 3 or 4, got ${samples}`);
  if (!isSchedulerName(request.scheduler)) {
    throw new InpaintRequestError("scheduler", `unknown scheduler "${request.scheduler}"; allowed: ${SCHEDULER_NAMES.join(", ")}`);
  }
  if (Math.trunc(steps * strength) < 1) {
    throw new InpaintRequestError("strength", `${strength} × ${steps} steps leaves no step to run; raise strength or steps`);
  }
  if (request.maskedContent !== undefined && !(LATENT_MASKED_CONTENT as readonly string[]).includes(request.maskedContent)) {
    throw new InpaintRequestError("masked_content", `must be one of ${LATENT_MASKED_CONTENT.join(", ")}, got "${request.maskedContent}"`);
  }
  if (request.vaeTiling !== undefined && !(VAE_TILING_MODES as readonly string[]).includes(request.vaeTiling)) {
    throw new InpaintRequestError("vae_tiling", `must be one of ${VAE_TILING_MODES.join(", ")}, got "${request.vaeTiling}"`);
  }
  if (request.image.width < 8 || request.image.height < 8) throw new InpaintRequestError("image", "is smaller than 8×8 pixels");
  if (request.mask.data.length !== request.mask.width * request.mask.height) {
    throw new InpaintRequestError("mask", `holds ${request.mask.data.length} bytes for ${request.mask.width}×${request.mask.height}`);
  }
}

export async function runInpaintPipeline(model: SdModel, request: InpaintRequest, hooks: InpaintHooks = {}): Promise<InpaintResult> {
  checkInpaintRequest(request, model.info.vaeScaleFactor);
  const started = performance.now();
  const onnxBefore = onnxTime(model);
  const { width, height, samples: batch } = request;
  const latentWidth = width / model.info.vaeScaleFactor;
  const latentHeight = height / model.info.vaeScaleFactor;
  const latentSize = 4 * latentWidth * latentHeight;
  const { unet, info } = model;
  const signal = hooks.signal;
  const tiledVae = vaeTiled(model, request.vaeTiling ?? "auto", width, height);

  // 1. Pictures at the working size; the mask follows the image.
  const image = await resizeRgb(request.image, width, height);
  let mask = request.mask;
  if (mask.width !== request.image.width || mask.height !== request.image.height) {
    hooks.onNote?.(`mask is ${mask.width}×${mask.height} but the image is ${request.image.width}×${request.image.height}: resized the mask to fit`);
  }
  mask = await resizeMask(mask, width, height);
  const { imageTensor, maskTensor, maskedImage } = await runCompute("inpaintInputTensors", { image, mask }, signal);
  signal?.throwIfAborted();

  // 2. Prompt embeddings: [uncond × N, cond × N] when guiding, else [cond × N].
  const guided = request.guidance > 1;
  const cond = await encodeText(model, request.prompt);
  const uncond = guided ? await encodeText(model, request.negativePrompt) : undefined;
  const contextSize = cond.length;
  const context = new Float32Array((guided ? 2 : 1) * batch * contextSize);
  for (let n = 0; n < batch; n++) {
    if (uncond) context.set(uncond, n * contextSize);
    context.set(cond, ((guided ? batch : 0) + n) * contextSize);
  }
  signal?.throwIfAborted();

  // 3. Scheduler, timesteps and strength.
  const scheduler: Scheduler = createScheduler(request.scheduler, model.schedulerConfig);
  scheduler.setTimesteps(request.steps);
  const { timesteps } = timestepsForStrength(scheduler, request.steps, request.strength);
  const strengthIsMax = request.strength === 1;
  const generator = new TorchGenerator(request.seed);

  // 4. Latents, drawing from the generator in diffusers' order: image latents (when needed), noise, masked-image latents.
  let imageLatents: Float32Array | undefined;
  if (!strengthIsMax || info.unetInChannels === 4) {
    imageLatents = repeat(await encodeImage(model, imageTensor, width, height, generator, tiledVae), batch);
  }
  const noise = generator.randn(batch * latentSize);
  let latents: Float32Array;
  const maskLatent = downsampleNearest(maskTensor, width, height, latentWidth, latentHeight);
  const changeMask = request.softMask ? latentChangeMask(mask, model.info.vaeScaleFactor) : undefined;
  if (imageLatents && request.maskedContent && request.maskedContent !== "original") {
    // Replace what the model starts from under the mask; the 4-channel blend-back keeps using it too.
    imageLatents = imageLatents.slice();
    const latentPlaneSize = latentWidth * latentHeight;
    for (let k = 0; k < imageLatents.length; k++) {
      if (maskLatent[k % latentPlaneSize] >= 0.5) imageLatents[k] = request.maskedContent === "latent noise" ? noise[k] : 0;
    }
  }
  if (strengthIsMax) {
    latents = new Float32Array(noise.length);
    for (let i = 0; i < noise.length; i++) latents[i] = noise[i] * scheduler.initNoiseSigma;
  } else {
    latents = scheduler.addNoise(imageLatents!, noise, timesteps[0]);
  }
  let maskedImageLatents: Float32Array | undefined;
  if (info.unetInChannels === 9) {
    maskedImageLatents = await encodeImage(model, maskedImage, width, height, generator, tiledVae);
  }
  if (changeMask && !imageLatents) {
    // Strength 1 on a 9-channel UNet encodes no image latents; the held places need them. The latent mean
    // draws nothing from the generator, so the noise, and a mask of all 1, stay as without soft_mask.
    imageLatents = repeat(await encodeImage(model, imageTensor, width, height, undefined, tiledVae), batch);
  }
  if (changeMask) holdToOriginal(latents, scheduler.addNoise(imageLatents!, noise, timesteps[0]), heldBeforeStep(changeMask, 0, timesteps.length));
  signal?.throwIfAborted();

  // 5. The denoising loop.
  const unetBatch = guided && info.unetBatchable ? 2 * batch : batch;
  const channels = info.unetInChannels;
  const latentPlane = latentWidth * latentHeight;
  const sampleDims = [unetBatch, channels, latentHeight, latentWidth];
  for (let i = 0; i < timesteps.length; i++) {
    signal?.throwIfAborted();
    const t = timesteps[i];
    const scaled = scheduler.scaleModelInput(latents, t);
    const noisePredictions: Float32Array[] = [];
    // With a UNet fixed to batch N, uncond and cond take two calls.
    const passes = guided && !info.unetBatchable ? 2 : 1;
    for (let pass = 0; pass < passes; pass++) {
      const copies = guided && info.unetBatchable ? 2 : 1;
      const sample = new Float32Array(unetBatch * channels * latentPlane);
      for (let copy = 0; copy < copies; copy++) {
        for (let n = 0; n < batch; n++) {
          const at = ((copy * batch + n) * channels) * latentPlane;
          sample.set(scaled.subarray(n * latentSize, (n + 1) * latentSize), at);
          if (channels === 9) {
            sample.set(maskLatent, at + 4 * latentPlane);
            sample.set(maskedImageLatents!, at + 5 * latentPlane);
          }
        }
      }
      const contextBatch = passes === 2 ? context.subarray(pass * batch * contextSize, (pass + 1) * batch * contextSize) : context;
      const output = await unet.run(
        {
          sample: { kind: "float", data: sample, dims: sampleDims },
          timestep: { kind: "float", data: Float32Array.of(t), dims: [1] },
          encoder_hidden_states: { kind: "float", data: contextBatch, dims: [unetBatch, contextSize / info.hiddenSize, info.hiddenSize] },
        },
        ["out_sample"],
      );
      noisePredictions.push(output.out_sample.data);
    }
    let noisePred: Float32Array;
    if (guided) {
      const [uncondPred, condPred] =
        passes === 2
          ? noisePredictions
          : [noisePredictions[0].subarray(0, batch * latentSize), noisePredictions[0].subarray(batch * latentSize)];
      noisePred = new Float32Array(batch * latentSize);
      for (let k = 0; k < noisePred.length; k++) {
        noisePred[k] = uncondPred[k] + request.guidance * (condPred[k] - uncondPred[k]);
      }
    } else {
      noisePred = noisePredictions[0];
    }
    latents = scheduler.step(noisePred, t, latents, generator);

    if (changeMask) {
      // The hold for step i + 1, done here so the preview shows it; after the last step, the clean latents.
      const last = i === timesteps.length - 1;
      const known = last ? imageLatents! : scheduler.addNoise(imageLatents!, noise, timesteps[i + 1]);
      holdToOriginal(latents, known, heldBeforeStep(changeMask, i + 1, timesteps.length));
    } else if (channels === 4) {
      // Keep the known region: blend the original latents, noised to the next timestep, outside the mask.
      let known = imageLatents!;
      if (i < timesteps.length - 1) known = scheduler.addNoise(imageLatents!, noise, timesteps[i + 1]);
      for (let n = 0; n < batch; n++) {
        for (let c = 0; c < 4; c++) {
          const base = n * latentSize + c * latentPlane;
          for (let p = 0; p < latentPlane; p++) {
            const m = maskLatent[p];
            latents[base + p] = (1 - m) * known[base + p] + m * latents[base + p];
          }
        }
      }
    }
    hooks.onStep?.(i + 1, timesteps.length, latentPreview(latents, latentWidth, latentHeight));
  }

  // 6. Decode one sample at a time (as diffusers' ONNX pipeline does, and it bounds memory).
  const images: RgbImage[] = [];
  for (let n = 0; n < batch; n++) {
    signal?.throwIfAborted();
    const latent = new Float32Array(latentSize);
    const one = latents.subarray(n * latentSize, (n + 1) * latentSize);
    for (let k = 0; k < latentSize; k++) latent[k] = one[k] / info.vaeScalingFactor;
    const decoded = await decodeLatents(model, latent, latentWidth, latentHeight, tiledVae);
    images.push(await runCompute("tensorToImage", { tensor: decoded, width, height }, signal));
  }
  return {
    images,
    seed: request.seed,
    steps: timesteps.length,
    totalMs: performance.now() - started,
    onnxMs: onnxTime(model) - onnxBefore,
    unetSampleDims: sampleDims,
    vaeTiled: tiledVae,
  };
}

function onnxTime(model: SdModel): number {
  return model.textEncoder.runMs + model.unet.runMs + model.vaeEncoder.runMs + model.vaeDecoder.runMs;
}

function encodeText(model: SdModel, text: string): Promise<Float32Array> {
  return promptEmbedding(model, text, async () => {
    const { ids } = await model.tokenizer.encode(text);
    const output = await model.textEncoder.run(
      { [model.info.inputIdsName]: { kind: "int", data: ids, dims: [1, ids.length] } },
      ["last_hidden_state"],
    );
    return output.last_hidden_state.data;
  });
}

/**
 * VAE-encodes [1, 3, H, W] to scaled latents [1, 4, h, w]. With mean ‖ logvar the latent is sampled
 * as diffusers does (mean + std × randn from the pipeline's generator); without a generator it is the
 * mean (diffusers' sample_mode "argmax"). An export that outputs latent_sample has sampled already.
 */
async function encodeImage(
  model: SdModel,
  tensor: Float32Array,
  width: number,
  height: number,
  generator: TorchGenerator | undefined,
  tiled: boolean,
): Promise<Float32Array> {
  const outputName = model.info.vaeEncoderOutput;
  const values = await encodePixels(model, tensor, width, height, tiled);
  const size = 4 * (width / model.info.vaeScaleFactor) * (height / model.info.vaeScaleFactor);
  const latents = new Float32Array(size);
  const scale = model.info.vaeScalingFactor;
  if (outputName === "latent_parameters" && generator) {
    const draw = generator.randn(size);
    for (let i = 0; i < size; i++) {
      const logvar = Math.min(20, Math.max(-30, values[size + i]));
      latents[i] = Math.fround(scale * Math.fround(values[i] + Math.fround(Math.exp(0.5 * logvar)) * draw[i]));
    }
  } else {
    for (let i = 0; i < size; i++) latents[i] = Math.fround(scale * values[i]);
  }
  return latents;
}

function repeat(values: Float32Array, times: number): Float32Array {
  const out = new Float32Array(values.length * times);
  for (let n = 0; n < times; n++) out.set(values, n * values.length);
  return out;
}
