/** KDPM2DiscreteScheduler (k-diffusion's sample_dpm_2), after diffusers: two model calls per step. */
import { asRawConfig } from "./config.ts";
import { addNoiseAtSigma, inferenceSigmas, initNoiseSigmaFor, predictOriginal, scaleBySigma } from "./sigma-schedule.ts";
import { readSigmaSchedulerConfig, type SigmaSchedulerConfig } from "./sigma-scheduler-config.ts";
import { interleaveWithLast, interpolatedTimesteps, logMidpoints } from "./kdpm2-sigmas.ts";
import { StepIndex } from "./step-index.ts";
import type { NoiseSource, Scheduler } from "./scheduler.ts";

const f32 = Math.fround;

export class KDPM2DiscreteScheduler implements Scheduler {
  readonly order = 2;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float32Array = new Float32Array(0);
  sigmasInterpol: Float32Array = new Float32Array(0);
  private readonly config: SigmaSchedulerConfig<"epsilon" | "v_prediction">;
  private readonly index = new StepIndex();
  private firstSample: Float32Array | null = null;

  constructor(rawConfig: unknown) {
    this.config = readSigmaSchedulerConfig(asRawConfig(rawConfig), "KDPM2DiscreteScheduler", {
      betaDefaults: { betaStart: 0.00085, betaEnd: 0.012 },
      // diffusers raises NotImplementedError for "sample".
      predictionTypes: ["epsilon", "v_prediction"],
      karrasSigmas: true,
    });
  }

  get initNoiseSigma(): number {
    return initNoiseSigmaFor(this.sigmas, this.config.spacing);
  }

  setTimesteps(numInferenceSteps: number): void {
    const { timesteps, sigmas } = inferenceSigmas(this.config, numInferenceSteps, { roundKarrasTimesteps: true });
    // Midpoints in log sigma between each sigma and the previous one (sigmas.roll(1)).
    const rolled = new Float32Array(sigmas.length);
    rolled[0] = sigmas[sigmas.length - 1];
    rolled.set(sigmas.subarray(0, sigmas.length - 1), 1);
    const sigmasInterpol = logMidpoints(sigmas, rolled);
    this.sigmas = interleaveWithLast(sigmas);
    this.sigmasInterpol = interleaveWithLast(sigmasInterpol);
    let timestepsInterpol = interpolatedTimesteps(sigmasInterpol, this.config.training.logSigmas);
    if (!this.config.useKarrasSigmas) timestepsInterpol = timestepsInterpol.map(f32);
    // [t0, ti1, t1, ti2, t2, ..., ti_{n-1}, t_{n-1}]
    const out: number[] = [timesteps[0]];
    for (let k = 1; k < timesteps.length; k++) out.push(timestepsInterpol[k], timesteps[k]);
    this.timesteps = Float64Array.from(out);
    this.firstSample = null;
    this.index.reset();
  }

  setBeginIndex(beginIndex: number): void {
    this.index.setBegin(beginIndex);
  }

  private get inFirstOrder(): boolean {
    return this.firstSample === null;
  }

  scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    const i = this.index.current(this.timesteps, timestep);
    return scaleBySigma(sample, this.inFirstOrder ? this.sigmas[i] : this.sigmasInterpol[i]);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, _noise?: NoiseSource): Float32Array {
    const i = this.index.current(this.timesteps, timestep);
    const first = this.inFirstOrder;
    const sigma = first ? this.sigmas[i] : this.sigmas[i - 1];
    const sigmaInterpol = first ? this.sigmasInterpol[i + 1] : this.sigmasInterpol[i];
    const sigmaNext = first ? this.sigmas[i + 1] : this.sigmas[i];
    const predOriginal = predictOriginal(this.config.predictionType, first ? sigma : sigmaInterpol, sample, modelOutput);
    const out = new Float32Array(sample.length);
    if (first) {
      const dt = f32(sigmaInterpol - sigma);
      for (let k = 0; k < out.length; k++) {
        const derivative = f32(f32(sample[k] - predOriginal[k]) / sigma);
        out[k] = sample[k] + f32(derivative * dt);
      }
      this.firstSample = sample;
    } else {
      const dt = f32(sigmaNext - sigma);
      const start = this.firstSample as Float32Array;
      for (let k = 0; k < out.length; k++) {
        const derivative = f32(f32(sample[k] - predOriginal[k]) / sigmaInterpol);
        out[k] = start[k] + f32(derivative * dt);
      }
      this.firstSample = null;
    }
    this.index.advance();
    return out;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return addNoiseAtSigma(original, noise, this.sigmas[this.index.forNoise(this.timesteps, timestep)]);
  }
}
