/** DDIMScheduler (Song et al. 2020), after diffusers' scheduling_ddim.py, deterministic (eta = 0). */
import {
  PREDICTION_TYPES,
  TIMESTEP_SPACINGS,
  asRawConfig,
  readBetaConfig,
  readBoolean,
  readChoice,
  readInteger,
  readNumber,
  type PredictionType,
  type TimestepSpacing,
} from "./config.ts";
import { AlphaSchedule, integerTimesteps } from "./alpha-schedule.ts";
import type { NoiseSource, Scheduler } from "./scheduler.ts";

const f32 = Math.fround;

export class DDIMScheduler implements Scheduler {
  readonly order = 1;
  readonly initNoiseSigma = 1.0;
  timesteps: Float64Array = new Float64Array(0);
  private readonly schedule: AlphaSchedule;
  private readonly numTrainTimesteps: number;
  private readonly finalAlphaCumprod: number;
  private readonly clipSample: boolean;
  private readonly clipSampleRange: number;
  private readonly stepsOffset: number;
  private readonly predictionType: PredictionType;
  private readonly timestepSpacing: TimestepSpacing;
  private readonly eta: number;
  private numInferenceSteps: number | null = null;

  constructor(rawConfig: unknown, options: { eta?: number } = {}) {
    const config = asRawConfig(rawConfig);
    const betaConfig = readBetaConfig(config);
    this.numTrainTimesteps = betaConfig.numTrainTimesteps;
    this.schedule = new AlphaSchedule(betaConfig);
    this.clipSample = readBoolean(config, "clip_sample", true);
    this.clipSampleRange = readNumber(config, "clip_sample_range", 1.0);
    const setAlphaToOne = readBoolean(config, "set_alpha_to_one", true);
    this.finalAlphaCumprod = setAlphaToOne ? 1.0 : this.schedule.alphasCumprod[0];
    this.stepsOffset = readInteger(config, "steps_offset", 0);
    this.predictionType = readChoice(config, "prediction_type", PREDICTION_TYPES, "epsilon");
    this.timestepSpacing = readChoice(config, "timestep_spacing", TIMESTEP_SPACINGS, "leading");
    if (readBoolean(config, "thresholding", false)) throw new Error("DDIM thresholding is not supported");
    if (readBoolean(config, "rescale_betas_zero_snr", false)) throw new Error("rescale_betas_zero_snr is not supported");
    this.eta = options.eta ?? 0;
    if (this.eta !== 0) throw new Error("only deterministic DDIM (eta = 0) is supported");
  }

  setTimesteps(numInferenceSteps: number): void {
    this.numInferenceSteps = numInferenceSteps;
    this.timesteps = integerTimesteps(this.timestepSpacing, this.numTrainTimesteps, numInferenceSteps, this.stepsOffset);
  }

  setBeginIndex(): void {
    // DDIM finds its alphas from the timestep value itself.
  }

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, _noise?: NoiseSource): Float32Array {
    if (this.numInferenceSteps === null) throw new Error("call setTimesteps before step");
    const prevTimestep = timestep - Math.floor(this.numTrainTimesteps / this.numInferenceSteps);
    const alphaProdT = this.schedule.alphaProd(timestep);
    const alphaProdTPrev = prevTimestep >= 0 ? this.schedule.alphaProd(prevTimestep) : this.finalAlphaCumprod;
    const betaProdT = f32(1 - alphaProdT);
    const sqrtAlpha = f32(Math.sqrt(alphaProdT));
    const sqrtBeta = f32(Math.sqrt(betaProdT));
    // eta = 0: std_dev_t is 0 and the direction coefficient is sqrt(1 - alpha_prev).
    const directionCoeff = f32(Math.sqrt(f32(1 - alphaProdTPrev)));
    const sqrtAlphaPrev = f32(Math.sqrt(alphaProdTPrev));
    const range = this.clipSampleRange;
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) {
      const x = sample[i];
      const m = modelOutput[i];
      let predOriginal: number;
      let predEpsilon: number;
      if (this.predictionType === "epsilon") {
        predOriginal = f32(f32(x - f32(sqrtBeta * m)) / sqrtAlpha);
        predEpsilon = m;
      } else if (this.predictionType === "sample") {
        predOriginal = m;
        predEpsilon = f32(f32(x - f32(sqrtAlpha * m)) / sqrtBeta);
      } else {
        predOriginal = f32(f32(sqrtAlpha * x) - f32(sqrtBeta * m));
        predEpsilon = f32(f32(sqrtAlpha * m) + f32(sqrtBeta * x));
      }
      if (this.clipSample) predOriginal = Math.min(Math.max(predOriginal, -range), range);
      out[i] = f32(sqrtAlphaPrev * predOriginal) + f32(directionCoeff * predEpsilon);
    }
    return out;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return this.schedule.addNoise(original, noise, timestep);
  }
}
