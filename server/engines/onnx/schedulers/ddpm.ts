/** DDPMScheduler (Ho et al. 2020), after diffusers' scheduling_ddpm.py (fixed variances). */
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
import { requireNoise, type NoiseSource, type Scheduler } from "./scheduler.ts";

const f32 = Math.fround;
type VarianceType = "fixed_small" | "fixed_small_log" | "fixed_large" | "fixed_large_log";

export class DDPMScheduler implements Scheduler {
  readonly order = 1;
  readonly initNoiseSigma = 1.0;
  timesteps: Float64Array;
  private readonly schedule: AlphaSchedule;
  private readonly numTrainTimesteps: number;
  private readonly varianceType: VarianceType;
  private readonly clipSample: boolean;
  private readonly clipSampleRange: number;
  private readonly predictionType: PredictionType;
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;
  private numInferenceSteps: number | null = null;

  constructor(rawConfig: unknown) {
    const config = asRawConfig(rawConfig);
    const betaConfig = readBetaConfig(config);
    this.numTrainTimesteps = betaConfig.numTrainTimesteps;
    this.schedule = new AlphaSchedule(betaConfig);
    this.varianceType = readChoice(
      config, "variance_type", ["fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log"], "fixed_small",
    );
    this.clipSample = readBoolean(config, "clip_sample", true);
    this.clipSampleRange = readNumber(config, "clip_sample_range", 1.0);
    this.predictionType = readChoice(config, "prediction_type", PREDICTION_TYPES, "epsilon");
    this.spacing = readChoice(config, "timestep_spacing", TIMESTEP_SPACINGS, "leading");
    this.stepsOffset = readInteger(config, "steps_offset", 0);
    if (readBoolean(config, "thresholding", false)) throw new Error("DDPM thresholding is not supported");
    if (readBoolean(config, "rescale_betas_zero_snr", false)) throw new Error("rescale_betas_zero_snr is not supported");
    // Before set_timesteps diffusers iterates every training timestep.
    this.timesteps = Float64Array.from({ length: this.numTrainTimesteps }, (_, i) => this.numTrainTimesteps - 1 - i);
  }

  setTimesteps(numInferenceSteps: number): void {
    this.numInferenceSteps = numInferenceSteps;
    this.timesteps = integerTimesteps(this.spacing, this.numTrainTimesteps, numInferenceSteps, this.stepsOffset);
  }

  setBeginIndex(): void {
    // DDPM finds its alphas from the timestep value itself.
  }

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  previousTimestep(timestep: number): number {
    if (this.numInferenceSteps !== null) {
      const index = this.timesteps.indexOf(timestep);
      if (index < 0) throw new Error(`timestep ${timestep} is not in the schedule`);
      return index === this.timesteps.length - 1 ? -1 : this.timesteps[index + 1];
    }
    return timestep - 1;
  }

  /** The posterior variance at `timestep` for the configured variance type (float32). */
  variance(timestep: number): number {
    const prev = this.previousTimestep(timestep);
    const alphaProdT = this.schedule.alphaProd(timestep);
    const alphaProdTPrev = prev >= 0 ? this.schedule.alphaProd(prev) : 1.0;
    const currentBetaT = f32(1 - f32(alphaProdT / alphaProdTPrev));
    const variance = Math.max(f32(f32(f32(1 - alphaProdTPrev) / f32(1 - alphaProdT)) * currentBetaT), f32(1e-20));
    switch (this.varianceType) {
      case "fixed_small":
        return variance;
      case "fixed_small_log":
        return f32(Math.exp(f32(0.5 * f32(Math.log(variance)))));
      case "fixed_large":
        return currentBetaT;
      case "fixed_large_log":
        return f32(Math.log(currentBetaT));
    }
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: NoiseSource): Float32Array {
    const t = timestep;
    const prev = this.previousTimestep(t);
    const alphaProdT = this.schedule.alphaProd(t);
    const alphaProdTPrev = prev >= 0 ? this.schedule.alphaProd(prev) : 1.0;
    const betaProdT = f32(1 - alphaProdT);
    const betaProdTPrev = f32(1 - alphaProdTPrev);
    const currentAlphaT = f32(alphaProdT / alphaProdTPrev);
    const currentBetaT = f32(1 - currentAlphaT);
    const sqrtAlpha = f32(Math.sqrt(alphaProdT));
    const sqrtBeta = f32(Math.sqrt(betaProdT));
    const originalCoeff = f32(f32(f32(Math.sqrt(alphaProdTPrev)) * currentBetaT) / betaProdT);
    const currentCoeff = f32(f32(f32(Math.sqrt(currentAlphaT)) * betaProdTPrev) / betaProdT);
    const range = this.clipSampleRange;
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) {
      const x = sample[i];
      const m = modelOutput[i];
      let predOriginal =
        this.predictionType === "epsilon" ? f32(f32(x - f32(sqrtBeta * m)) / sqrtAlpha)
        : this.predictionType === "sample" ? m
        : f32(f32(sqrtAlpha * x) - f32(sqrtBeta * m));
      if (this.clipSample) predOriginal = Math.min(Math.max(predOriginal, -range), range);
      out[i] = f32(originalCoeff * predOriginal) + f32(currentCoeff * x);
    }
    if (t > 0) {
      const draws = requireNoise(noise, "DDPMScheduler").randn(sample.length);
      const variance = this.variance(t);
      const scale = this.varianceType === "fixed_small_log" ? variance : f32(Math.sqrt(variance));
      for (let i = 0; i < out.length; i++) out[i] = out[i] + f32(scale * draws[i]);
    }
    return out;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return this.schedule.addNoise(original, noise, timestep);
  }
}
