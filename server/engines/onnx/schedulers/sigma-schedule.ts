/**
 * The k-diffusion view of the training schedule (Euler, Euler a, LMS, Heun, DPM2): noise levels
 * sigma = sqrt((1 - a) / a), and the inference sigmas diffusers' set_timesteps derives from them.
 */
import type { BetaConfig, TimestepSpacing } from "./config.ts";
import type { SigmaSchedulerConfig } from "./sigma-scheduler-config.ts";
import {
  alphasCumprodFromBetas,
  karrasSigmas,
  logF32,
  makeBetas,
  npInterpOnIndices,
  roundHalfEven,
  sigmaToT,
  sigmasFromAlphasCumprod,
  spacedTimestepsF32,
} from "./noise-schedule.ts";

const f32 = Math.fround;

export class TrainingSigmas {
  readonly alphasCumprod: Float32Array;
  /** Ascending in t, float32 like diffusers' np.array of the float32 tensor. */
  readonly sigmas: Float32Array;
  readonly logSigmas: Float32Array;

  constructor(config: BetaConfig) {
    this.alphasCumprod = alphasCumprodFromBetas(makeBetas(config));
    this.sigmas = sigmasFromAlphasCumprod(this.alphasCumprod);
    this.logSigmas = logF32(this.sigmas);
  }
}

export interface InferenceSigmas {
  /** Float32 values, one per inference step. */
  timesteps: Float64Array;
  /** Float32 values, one per inference step plus the final 0. */
  sigmas: Float32Array;
}

/**
 * Spaced timesteps, sigmas interpolated at them, optionally replaced by Karras sigmas (their
 * timesteps found by _sigma_to_t, rounded where the class rounds), then a trailing zero sigma.
 */
export function inferenceSigmas(
  config: SigmaSchedulerConfig,
  numInferenceSteps: number,
  options: { roundKarrasTimesteps: boolean },
): InferenceSigmas {
  const training = config.training;
  const n = numInferenceSteps;
  if (!Number.isInteger(n) || n < 1) throw new Error(`num_inference_steps must be a positive integer, got ${n}`);
  let timesteps = spacedTimestepsF32(config.spacing, config.numTrainTimesteps, n, config.stepsOffset);
  let sigmas: Float64Array = npInterpOnIndices(timesteps, training.sigmas);
  if (config.useKarrasSigmas) {
    sigmas = karrasSigmas(sigmas[sigmas.length - 1], sigmas[0], n);
    timesteps = sigmas.map((sigma) => {
      const t = sigmaToT(sigma, training.logSigmas);
      return f32(options.roundKarrasTimesteps ? roundHalfEven(t) : t);
    });
  }
  const withZero = new Float32Array(n + 1);
  withZero.set(sigmas);
  return { timesteps, sigmas: withZero };
}

export function maxOf(values: Float32Array): number {
  let max = -Infinity;
  for (const v of values) if (v > max) max = v;
  return max;
}

/** init_noise_sigma of the k-diffusion schedulers: max sigma, or sqrt(max^2 + 1) for "leading". */
export function initNoiseSigmaFor(sigmas: Float32Array, spacing: TimestepSpacing): number {
  const max = maxOf(sigmas);
  return spacing === "linspace" || spacing === "trailing" ? max : f32(Math.sqrt(f32(f32(max * max) + 1)));
}

/** sample / sqrt(sigma^2 + 1), the k-diffusion input scaling, in float32. */
export function scaleBySigma(sample: Float32Array, sigma: number): Float32Array {
  const denominator = f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));
  return sample.map((x) => f32(x / denominator));
}

/** x0 from the model output at noise level sigma (epsilon / v_prediction / sample), float32. */
export function predictOriginal(
  predictionType: "epsilon" | "v_prediction" | "sample",
  sigma: number,
  sample: Float32Array,
  modelOutput: Float32Array,
): Float32Array {
  const out = new Float32Array(sample.length);
  if (predictionType === "epsilon") {
    for (let i = 0; i < out.length; i++) out[i] = f32(sample[i] - f32(sigma * modelOutput[i]));
  } else if (predictionType === "v_prediction") {
    const sigmaSquaredPlusOne = f32(f32(sigma * sigma) + 1);
    const outputCoeff = f32(-sigma / f32(Math.sqrt(sigmaSquaredPlusOne)));
    for (let i = 0; i < out.length; i++) {
      out[i] = f32(f32(modelOutput[i] * outputCoeff) + f32(sample[i] / sigmaSquaredPlusOne));
    }
  } else {
    out.set(modelOutput);
  }
  return out;
}

/** original + noise * sigma, the k-diffusion forward process. */
export function addNoiseAtSigma(original: Float32Array, noise: Float32Array, sigma: number): Float32Array {
  const out = new Float32Array(original.length);
  for (let i = 0; i < out.length; i++) out[i] = original[i] + f32(noise[i] * sigma);
  return out;
}
