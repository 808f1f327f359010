/** KDPM2AncestralDiscreteScheduler (k-diffusion's sample_dpm_2_ancestral), after diffusers. */
import { asRawConfig } from "./config.ts";
import { addNoiseAtSigma, inferenceSigmas, initNoiseSigmaFor, predictOriginal, scaleBySigma } from "./sigma-schedule.ts";
import { readSigmaSchedulerConfig, type SigmaSchedulerConfig } from "./sigma-scheduler-config.ts";
import { interleaveWithLast, interpolatedTimesteps, logMidpoints } from "./kdpm2-sigmas.ts";
import { StepIndex } from "./step-index.ts";
import { requireNoise, type NoiseSource, type Scheduler } from "./scheduler.ts";

const f32 = Math.fround;

export class KDPM2AncestralDiscreteScheduler implements Scheduler {
  readonly order = 2;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float32Array = new Float32Array(0);
  private sigmasInterpol: Float32Array = new Float32Array(0);
  private sigmasUp: Float32Array = new Float32Array(0);
  private sigmasDown: Float32Array = new Float32Array(0);
  private readonly config: SigmaSchedulerConfig<"epsilon" | "v_prediction">;
  private readonly index = new StepIndex();
  private firstSample: Float32Array | null = null;

  constructor(rawConfig: unknown) {
    this.config = readSigmaSchedulerConfig(asRawConfig(rawConfig), "KDPM2AncestralDiscreteScheduler", {
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
    const n = sigmas.length;
    const up = new Float32Array(n);
    const down = new Float32Array(n);
    for (let k = 0; k < n; k++) {
      const s2 = f32(sigmas[k] * sigmas[k]);
      const next = k + 1 < n ? sigmas[k + 1] : 0;
      const next2 = f32(next * next);
      up[k] = f32(Math.sqrt(f32(f32(next2 * f32(s2 - next2)) / s2)));
      // sqrt(next^2 - up^2) = next^2 / sigma; float32 cancellation can make the difference <= 0 for a
      // huge first sigma (squaredcos_cap_v2, diffusers #14213), so fall back to the exact form there.
      const downSquared = f32(next2 - f32(up[k] * up[k]));
      down[k] = k === n - 1 ? 0 : downSquared > 0 ? f32(Math.sqrt(downSquared)) : f32(next2 / sigmas[k]);
    }
    const interpol = logMidpoints(sigmas, down);
    interpol[n - 1] = 0;
    interpol[n - 2] = 0;
    this.sigmas = interleaveWithLast(sigmas);
    this.sigmasInterpol = interleaveWithLast(interpol);
    this.sigmasUp = interleaveWithLast(up);
    this.sigmasDown = interleaveWithLast(down);
    let timestepsInterpol = interpolatedTimesteps(interpol, this.config.training.logSigmas);
    if (!this.config.useKarrasSigmas) timestepsInterpol = timestepsInterpol.map(f32);
    // [t0, ti0, t1, ti1, t2, ..., ti_{n-2}, t_{n-1}]
    const out: number[] = [timesteps[0]];
    for (let k = 1; k < timesteps.length; k++) out.push(timestepsInterpol[k - 1], timesteps[k]);
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
    return scaleBySigma(sample, this.inFirstOrder ? this.sigmas[i] : this.sigmasInterpol[i - 1]);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: NoiseSource): Float32Array {
    const i = this.index.current(this.timesteps, timestep);
    const first = this.inFirstOrder;
    const sigma = first ? this.sigmas[i] : this.sigmas[i - 1];
    const sigmaInterpol = first ? this.sigmasInterpol[i] : this.sigmasInterpol[i - 1];
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
      const sigmaUp = this.sigmasUp[i - 1];
      const dt = f32(this.sigmasDown[i - 1] - sigma);
      const start = this.firstSample as Float32Array;
      const draws = requireNoise(noise, "KDPM2AncestralDiscreteScheduler").randn(sample.length);
      for (let k = 0; k < out.length; k++) {
        const derivative = f32(f32(sample[k] - predOriginal[k]) / sigmaInterpol);
        const deterministic = f32(start[k] + f32(derivative * dt));
        out[k] = deterministic + f32(draws[k] * sigmaUp);
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
