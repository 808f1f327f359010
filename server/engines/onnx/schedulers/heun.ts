/** HeunDiscreteScheduler (Karras et al. 2022, Algorithm 1), after diffusers: two model calls per step. */
import { PREDICTION_TYPES, asRawConfig, readBoolean, readNumber, type PredictionType } from "./config.ts";
import { addNoiseAtSigma, inferenceSigmas, initNoiseSigmaFor, predictOriginal, scaleBySigma } from "./sigma-schedule.ts";
import { readSigmaSchedulerConfig, type SigmaSchedulerConfig } from "./sigma-scheduler-config.ts";
import { StepIndex } from "./step-index.ts";
import type { NoiseSource, Scheduler } from "./scheduler.ts";

const f32 = Math.fround;

/** [a0, a1, a1, a2, a2, ...]: diffusers' cat([x[:1], x[1:].repeat_interleave(2)]). */
export function repeatAfterFirst<T extends Float32Array | Float64Array>(values: T, make: (n: number) => T): T {
  const out = make(values.length * 2 - 1);
  out[0] = values[0];
  for (let i = 1; i < values.length; i++) {
    out[2 * i - 1] = values[i];
    out[2 * i] = values[i];
  }
  return out;
}

export class HeunDiscreteScheduler implements Scheduler {
  readonly order = 2;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float32Array = new Float32Array(0);
  private readonly config: SigmaSchedulerConfig<PredictionType>;
  private readonly clipSample: boolean;
  private readonly clipSampleRange: number;
  private readonly index = new StepIndex();
  private prevDerivative: Float32Array | null = null;
  private dt: number | null = null;
  private firstSample: Float32Array | null = null;

  constructor(rawConfig: unknown) {
    const config = asRawConfig(rawConfig);
    this.config = readSigmaSchedulerConfig(config, "HeunDiscreteScheduler", {
      betaDefaults: { betaStart: 0.00085, betaEnd: 0.012 },
      predictionTypes: PREDICTION_TYPES,
      karrasSigmas: true,
    });
    this.clipSample = readBoolean(config, "clip_sample", false);
    this.clipSampleRange = readNumber(config, "clip_sample_range", 1.0);
  }

  get initNoiseSigma(): number {
    return initNoiseSigmaFor(this.sigmas, this.config.spacing);
  }

  setTimesteps(numInferenceSteps: number): void {
    const { timesteps, sigmas } = inferenceSigmas(this.config, numInferenceSteps, { roundKarrasTimesteps: false });
    // sigmas: [s0, s1, s1, ..., s_{n-1}, s_{n-1}, 0]
    const repeated = repeatAfterFirst(sigmas.subarray(0, sigmas.length - 1), (n) => new Float32Array(n));
    this.sigmas = new Float32Array([...repeated, 0]);
    this.timesteps = repeatAfterFirst(timesteps, (n) => new Float64Array(n));
    this.prevDerivative = null;
    this.dt = null;
    this.firstSample = null;
    this.index.reset();
  }

  setBeginIndex(beginIndex: number): void {
    this.index.setBegin(beginIndex);
  }

  private get inFirstOrder(): boolean {
    return this.dt === null;
  }

  scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    return scaleBySigma(sample, this.sigmas[this.index.current(this.timesteps, timestep)]);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, _noise?: NoiseSource): Float32Array {
    const i = this.index.current(this.timesteps, timestep);
    const first = this.inFirstOrder;
    const sigma = first ? this.sigmas[i] : this.sigmas[i - 1];
    const sigmaNext = first ? this.sigmas[i + 1] : this.sigmas[i];
    const predOriginal = predictOriginal(this.config.predictionType, first ? sigma : sigmaNext, sample, modelOutput);
    if (this.clipSample) {
      const r = this.clipSampleRange;
      for (let k = 0; k < predOriginal.length; k++) predOriginal[k] = Math.min(Math.max(predOriginal[k], -r), r);
    }
    const out = new Float32Array(sample.length);
    if (first) {
      const derivative = new Float32Array(sample.length);
      for (let k = 0; k < out.length; k++) derivative[k] = f32(sample[k] - predOriginal[k]) / sigma;
      const dt = f32(sigmaNext - sigma);
      for (let k = 0; k < out.length; k++) out[k] = sample[k] + f32(derivative[k] * dt);
      this.prevDerivative = derivative;
      this.dt = dt;
      this.firstSample = sample;
    } else {
      const previous = this.prevDerivative as Float32Array;
      const dt = this.dt as number;
      const start = this.firstSample as Float32Array;
      for (let k = 0; k < out.length; k++) {
        const derivative = f32(f32(sample[k] - predOriginal[k]) / sigmaNext);
        const averaged = f32(f32(previous[k] + derivative) / 2);
        out[k] = start[k] + f32(averaged * dt);
      }
      this.prevDerivative = null;
      this.dt = null;
      this.firstSample = null;
    }
    this.index.advance();
    return out;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return addNoiseAtSigma(original, noise, this.sigmas[this.index.forNoise(this.timesteps, timestep)]);
  }
}
