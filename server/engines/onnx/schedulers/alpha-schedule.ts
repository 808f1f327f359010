/**
 * The DDPM-family view of the training schedule (DDIM, DDPM, PNDM): alphas_cumprod indexed by
 * integer timestep, and the forward process x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) noise.
 */
import type { BetaConfig } from "./config.ts";
import { alphasCumprodFromBetas, makeBetas, roundHalfEven } from "./noise-schedule.ts";

const f32 = Math.fround;

export class AlphaSchedule {
  readonly betas: Float32Array;
  readonly alphas: Float32Array;
  readonly alphasCumprod: Float32Array;

  constructor(config: BetaConfig) {
    this.betas = makeBetas(config);
    this.alphas = this.betas.map((b) => f32(1 - b));
    this.alphasCumprod = alphasCumprodFromBetas(this.betas);
  }

  alphaProd(timestep: number): number {
    const a = this.alphasCumprod[timestep];
    if (a === undefined || !Number.isInteger(timestep)) throw new Error(`no trained timestep ${timestep}`);
    return a;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    const a = this.alphaProd(timestep);
    const sqrtAlpha = f32(Math.sqrt(a));
    const sqrtOneMinusAlpha = f32(Math.sqrt(f32(1 - a)));
    const out = new Float32Array(original.length);
    for (let i = 0; i < out.length; i++) out[i] = f32(sqrtAlpha * original[i]) + f32(sqrtOneMinusAlpha * noise[i]);
    return out;
  }
}

/** Integer timesteps of DDIM/DDPM for each spacing (diffusers' np.int64 arrays, descending). */
export function integerTimesteps(
  spacing: "linspace" | "leading" | "trailing",
  numTrainTimesteps: number,
  numInferenceSteps: number,
  stepsOffset: number,
): Float64Array {
  if (!Number.isInteger(numInferenceSteps) || numInferenceSteps < 1) {
    throw new Error(`num_inference_steps must be a positive integer, got ${numInferenceSteps}`);
  }
  if (numInferenceSteps > numTrainTimesteps) {
    throw new Error(`num_inference_steps ${numInferenceSteps} cannot exceed num_train_timesteps ${numTrainTimesteps}`);
  }
  const out = new Float64Array(numInferenceSteps);
  if (spacing === "linspace") {
    const step = (numTrainTimesteps - 1) / Math.max(numInferenceSteps - 1, 1);
    for (let i = 0; i < numInferenceSteps; i++) {
      const k = numInferenceSteps - 1 - i;
      out[i] = k === numInferenceSteps - 1 && numInferenceSteps > 1 ? numTrainTimesteps - 1 : roundHalfEven(k * step);
    }
  } else if (spacing === "leading") {
    const ratio = Math.floor(numTrainTimesteps / numInferenceSteps);
    for (let i = 0; i < numInferenceSteps; i++) out[i] = (numInferenceSteps - 1 - i) * ratio + stepsOffset;
  } else {
    const ratio = numTrainTimesteps / numInferenceSteps;
    for (let i = 0; i < numInferenceSteps; i++) out[i] = roundHalfEven(numTrainTimesteps - i * ratio) - 1;
  }
  return out;
}
