/**
 * LCMScheduler (Luo et al. 2023, latent consistency models), after diffusers' scheduling_lcm.py: a few steps
 * (4–8) on a subset of the `original_inference_steps` schedule the model was distilled on; each step maps the
 * sample to its consistency-model estimate of x0 (boundary-condition scalings c_skip, c_out) and, except at the
 * last step, noises that estimate afresh to the next timestep with a draw from the pipeline's generator.
 *
 * Timesteps follow `set_timesteps(num_inference_steps)` without its `strength` argument, as
 * StableDiffusionInpaintPipeline calls it; strength < 1 then skips the first steps like every scheduler.
 */
import {
  PREDICTION_TYPES,
  asRawConfig,
  readBetaConfig,
  readBoolean,
  readChoice,
  readInteger,
  readNumber,
  rejectUnsupportedFlags,
  type PredictionType,
} from "./config.ts";
import { AlphaSchedule } from "./alpha-schedule.ts";
import { requireNoise, type NoiseSource, type Scheduler } from "./scheduler.ts";
import { StepIndex } from "./step-index.ts";

const f32 = Math.fround;
/** diffusers' sigma_data for the boundary condition (fixed at 0.5 in get_scalings_for_boundary_condition_discrete). */
const SIGMA_DATA_SQUARED = 0.25;

export class LCMScheduler implements Scheduler {
  readonly order = 1;
  readonly initNoiseSigma = 1.0;
  timesteps: Float64Array;
  private readonly schedule: AlphaSchedule;
  private readonly numTrainTimesteps: number;
  private readonly originalInferenceSteps: number;
  private readonly finalAlphaCumprod: number;
  private readonly clipSample: boolean;
  private readonly clipSampleRange: number;
  private readonly predictionType: PredictionType;
  private readonly timestepScaling: number;
  private readonly index = new StepIndex();
  private numInferenceSteps: number | null = null;

  constructor(rawConfig: unknown) {
    const config = asRawConfig(rawConfig);
    const betaConfig = readBetaConfig(config, { betaStart: 0.00085, betaEnd: 0.012, betaSchedule: "scaled_linear" });
    this.numTrainTimesteps = betaConfig.numTrainTimesteps;
    this.schedule = new AlphaSchedule(betaConfig);
    this.originalInferenceSteps = readInteger(config, "original_inference_steps", 50);
    if (this.originalInferenceSteps < 1 || this.originalInferenceSteps > this.numTrainTimesteps) {
      throw new Error(
        `LCMScheduler: original_inference_steps must be from 1 to num_train_timesteps (${this.numTrainTimesteps}), got ${this.originalInferenceSteps}`,
      );
    }
    this.clipSample = readBoolean(config, "clip_sample", false);
    this.clipSampleRange = readNumber(config, "clip_sample_range", 1.0);
    const setAlphaToOne = readBoolean(config, "set_alpha_to_one", true);
    this.finalAlphaCumprod = setAlphaToOne ? 1.0 : this.schedule.alphasCumprod[0];
    this.predictionType = readChoice(config, "prediction_type", PREDICTION_TYPES, "epsilon");
    this.timestepScaling = readNumber(config, "timestep_scaling", 10.0);
    // LCM's schedule is its own: diffusers' class reads timestep_spacing and steps_offset but never uses them.
    rejectUnsupportedFlags(config, "LCMScheduler", ["thresholding", "rescale_betas_zero_snr"]);
    // Before set_timesteps diffusers iterates every training timestep.
    this.timesteps = Float64Array.from({ length: this.numTrainTimesteps }, (_, i) => this.numTrainTimesteps - 1 - i);
  }

  setTimesteps(numInferenceSteps: number): void {
    const original = this.originalInferenceSteps;
    if (!Number.isInteger(numInferenceSteps) || numInferenceSteps < 1 || numInferenceSteps > original) {
      throw new Error(
        `steps: LCM takes 1 to ${original} steps (the original_inference_steps it was distilled on; 4–8 is usual), got ${numInferenceSteps}`,
      );
    }
    // lcm_origin_timesteps = arange(1, original + 1) * k - 1, visited from the end, numInferenceSteps of them
    // at floor(linspace(0, original, numInferenceSteps, endpoint=False)) (numpy: i * step in float64).
    const k = Math.floor(this.numTrainTimesteps / original);
    const spacing = original / numInferenceSteps;
    this.timesteps = new Float64Array(numInferenceSteps);
    for (let i = 0; i < numInferenceSteps; i++) {
      const position = Math.floor(i * spacing);
      this.timesteps[i] = (original - position) * k - 1;
    }
    this.numInferenceSteps = numInferenceSteps;
    this.index.reset();
  }

  setBeginIndex(beginIndex: number): void {
    this.index.setBegin(beginIndex);
  }

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  /**
   * c_skip = σ_data² / (s² + σ_data²) and c_out = s / √(s² + σ_data²) with s = timestep × timestep_scaling, in
   * float32 as torch computes them from the int64 timestep tensor (`0.25 / x` is torch's reciprocal(x) × 0.25).
   */
  boundaryScalings(timestep: number): { cSkip: number; cOut: number } {
    const scaled = f32(timestep * this.timestepScaling);
    const denominator = f32(f32(scaled * scaled) + SIGMA_DATA_SQUARED);
    return {
      cSkip: f32(f32(1 / denominator) * SIGMA_DATA_SQUARED),
      cOut: f32(scaled / f32(Math.sqrt(denominator))),
    };
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: NoiseSource): Float32Array {
    const steps = this.numInferenceSteps;
    if (steps === null) throw new Error("call setTimesteps before step");
    const stepIndex = this.index.current(this.timesteps, timestep);
    const last = stepIndex === steps - 1;
    const prevTimestep = stepIndex + 1 < this.timesteps.length ? this.timesteps[stepIndex + 1] : timestep;
    const alphaProdT = this.schedule.alphaProd(timestep);
    const alphaProdTPrev = prevTimestep >= 0 ? this.schedule.alphaProd(prevTimestep) : this.finalAlphaCumprod;
    const sqrtAlpha = f32(Math.sqrt(alphaProdT));
    const sqrtBeta = f32(Math.sqrt(f32(1 - alphaProdT)));
    const { cSkip, cOut } = this.boundaryScalings(timestep);
    const range = this.clipSampleRange;
    const denoised = new Float32Array(sample.length);
    for (let i = 0; i < denoised.length; i++) {
      const x = sample[i];
      const m = modelOutput[i];
      let predOriginal =
        this.predictionType === "epsilon" ? f32(f32(x - f32(sqrtBeta * m)) / sqrtAlpha)
        : this.predictionType === "sample" ? m
        : f32(f32(sqrtAlpha * x) - f32(sqrtBeta * m));
      if (this.clipSample) predOriginal = Math.min(Math.max(predOriginal, -range), range);
      denoised[i] = f32(cOut * predOriginal) + f32(cSkip * x);
    }
    this.index.advance();
    if (last) return denoised;
    // Consistency sampling: a fresh draw noises the x0 estimate to the next timestep (one randn of the sample's shape).
    const draws = requireNoise(noise, "LCMScheduler").randn(sample.length);
    const sqrtAlphaPrev = f32(Math.sqrt(alphaProdTPrev));
    const sqrtBetaPrev = f32(Math.sqrt(f32(1 - alphaProdTPrev)));
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) out[i] = f32(sqrtAlphaPrev * denoised[i]) + f32(sqrtBetaPrev * draws[i]);
    return out;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return this.schedule.addNoise(original, noise, timestep);
  }
}
