/** EulerDiscreteScheduler (Karras et al. 2022, Algorithm 2 with s_churn = 0), after diffusers. */
import {
  PREDICTION_TYPES,
  TIMESTEP_SPACINGS,
  asRawConfig,
  readBetaConfig,
  readBoolean,
  readChoice,
  readInteger,
  type PredictionType,
  type TimestepSpacing,
} from "./config.ts";
import {
  TrainingSigmas,
  addNoiseAtSigma,
  inferenceSigmas,
  initNoiseSigmaFor,
  predictOriginal,
  scaleBySigma,
} from "./sigma-schedule.ts";
import { StepIndex } from "./step-index.ts";
import type { NoiseSource, Scheduler } from "./scheduler.ts";

const f32 = Math.fround;

export class EulerDiscreteScheduler implements Scheduler {
  readonly order = 1;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float32Array = new Float32Array(0);
  private readonly training: TrainingSigmas;
  private readonly numTrainTimesteps: number;
  private readonly predictionType: PredictionType;
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;
  private readonly useKarrasSigmas: boolean;
  private readonly index = new StepIndex();

  constructor(rawConfig: unknown) {
    const config = asRawConfig(rawConfig);
    const betaConfig = readBetaConfig(config);
    this.numTrainTimesteps = betaConfig.numTrainTimesteps;
    this.training = new TrainingSigmas(betaConfig);
    this.predictionType = readChoice(config, "prediction_type", PREDICTION_TYPES, "epsilon");
    this.spacing = readChoice(config, "timestep_spacing", TIMESTEP_SPACINGS, "linspace");
    this.stepsOffset = readInteger(config, "steps_offset", 0);
    this.useKarrasSigmas = readBoolean(config, "use_karras_sigmas", false);
    for (const key of ["use_exponential_sigmas", "use_beta_sigmas", "rescale_betas_zero_snr"]) {
      if (readBoolean(config, key, false)) throw new Error(`EulerDiscreteScheduler: ${key} is not supported`);
    }
    readChoice(config, "interpolation_type", ["linear"], "linear");
    readChoice(config, "final_sigmas_type", ["zero"], "zero");
    readChoice(config, "timestep_type", ["discrete"], "discrete");
  }

  get initNoiseSigma(): number {
    return initNoiseSigmaFor(this.sigmas, this.spacing);
  }

  setTimesteps(numInferenceSteps: number): void {
    const { timesteps, sigmas } = inferenceSigmas(this.training, {
      spacing: this.spacing,
      numTrainTimesteps: this.numTrainTimesteps,
      numInferenceSteps,
      stepsOffset: this.stepsOffset,
      useKarrasSigmas: this.useKarrasSigmas,
      roundKarrasTimesteps: false,
    });
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
    const predOriginal = predictOriginal(this.predictionType, sigma, sample, modelOutput);
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
