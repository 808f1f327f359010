/** EulerDiscreteScheduler (Karras et al. 2022, Algorithm 2 with s_churn = 0), after diffusers. */
import { PREDICTION_TYPES, asRawConfig, readChoice, rejectUnsupportedFlags, type PredictionType } from "./config.ts";
import { addNoiseAtSigma, inferenceSigmas, initNoiseSigmaFor, predictOriginal, scaleBySigma } from "./sigma-schedule.ts";
import { readSigmaSchedulerConfig, type SigmaSchedulerConfig } from "./sigma-scheduler-config.ts";
import { StepIndex } from "./step-index.ts";
import type { NoiseSource, Scheduler } from "./scheduler.ts";

const f32 = Math.fround;

export class EulerDiscreteScheduler implements Scheduler {
  readonly order = 1;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float32Array = new Float32Array(0);
  private readonly config: SigmaSchedulerConfig<PredictionType>;
  private readonly index = new StepIndex();

  constructor(rawConfig: unknown) {
    const config = asRawConfig(rawConfig);
    this.config = readSigmaSchedulerConfig(config, "EulerDiscreteScheduler", {
      predictionTypes: PREDICTION_TYPES,
      karrasSigmas: true,
    });
    rejectUnsupportedFlags(config, "EulerDiscreteScheduler", ["rescale_betas_zero_snr"]);
    readChoice(config, "interpolation_type", ["linear"], "linear");
    readChoice(config, "final_sigmas_type", ["zero"], "zero");
    readChoice(config, "timestep_type", ["discrete"], "discrete");
  }

  get initNoiseSigma(): number {
    return initNoiseSigmaFor(this.sigmas, this.config.spacing);
  }

  setTimesteps(numInferenceSteps: number): void {
    const { timesteps, sigmas } = inferenceSigmas(this.config, numInferenceSteps, { roundKarrasTimesteps: false });
    this.timesteps = timesteps;
    this.sigmas = sigmas;
    this.index.reset();
  }

  setBeginIndex(beginIndex: number): void {
    this.index.setBegin(beginIndex);
  }

  scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    return scaleBySigma(sample, this.sigmas[this.index.current(this.timesteps, timestep)]);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, _noise?: NoiseSource): Float32Array {
    const i = this.index.current(this.timesteps, timestep);
    const sigma = this.sigmas[i];
    const predOriginal = predictOriginal(this.config.predictionType, sigma, sample, modelOutput);
    const dt = f32(this.sigmas[i + 1] - sigma);
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) {
      const derivative = f32(f32(sample[k] - predOriginal[k]) / sigma);
      out[k] = sample[k] + f32(derivative * dt);
    }
    this.index.advance();
    return out;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return addNoiseAtSigma(original, noise, this.sigmas[this.index.forNoise(this.timesteps, timestep)]);
  }
}
