/** EulerAncestralDiscreteScheduler (k-diffusion's sample_euler_ancestral), after diffusers. */
import { asRawConfig, rejectUnsupportedFlags } from "./config.ts";
import { addNoiseAtSigma, inferenceSigmas, initNoiseSigmaFor, predictOriginal, scaleBySigma } from "./sigma-schedule.ts";
import { readSigmaSchedulerConfig, type SigmaSchedulerConfig } from "./sigma-scheduler-config.ts";
import { StepIndex } from "./step-index.ts";
import { requireNoise, type NoiseSource, type Scheduler } from "./scheduler.ts";

const f32 = Math.fround;

export class EulerAncestralDiscreteScheduler implements Scheduler {
  readonly order = 1;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float32Array = new Float32Array(0);
  private readonly config: SigmaSchedulerConfig<"epsilon" | "v_prediction">;
  private readonly index = new StepIndex();

  constructor(rawConfig: unknown) {
    const config = asRawConfig(rawConfig);
    this.config = readSigmaSchedulerConfig(config, "EulerAncestralDiscreteScheduler", {
      // diffusers raises NotImplementedError for "sample" here.
      predictionTypes: ["epsilon", "v_prediction"],
      // The diffusers class has no use_karras_sigmas (nor exponential / beta sigmas).
      karrasSigmas: false,
    });
    rejectUnsupportedFlags(config, "EulerAncestralDiscreteScheduler", ["rescale_betas_zero_snr"]);
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

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: NoiseSource): Float32Array {
    const source = requireNoise(noise, "EulerAncestralDiscreteScheduler");
    const i = this.index.current(this.timesteps, timestep);
    const sigmaFrom = this.sigmas[i];
    const sigmaTo = this.sigmas[i + 1];
    const predOriginal = predictOriginal(this.config.predictionType, sigmaFrom, sample, modelOutput);
    const fromSquared = f32(sigmaFrom * sigmaFrom);
    const toSquared = f32(sigmaTo * sigmaTo);
    const sigmaUp = f32(Math.sqrt(f32(f32(toSquared * f32(fromSquared - toSquared)) / fromSquared)));
    const sigmaDown = f32(Math.sqrt(f32(toSquared - f32(sigmaUp * sigmaUp))));
    const dt = f32(sigmaDown - sigmaFrom);
    const draws = source.randn(sample.length);
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) {
      const derivative = f32(f32(sample[k] - predOriginal[k]) / sigmaFrom);
      const deterministic = f32(sample[k] + f32(derivative * dt));
      out[k] = deterministic + f32(draws[k] * sigmaUp);
    }
    this.index.advance();
    return out;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return addNoiseAtSigma(original, noise, this.sigmas[this.index.forNoise(this.timesteps, timestep)]);
  }
}
