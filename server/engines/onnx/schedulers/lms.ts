/** LMSDiscreteScheduler (linear multistep on the sigma ODE, order 4), after diffusers. */
import { PREDICTION_TYPES, asRawConfig, type PredictionType } from "./config.ts";
import { addNoiseAtSigma, inferenceSigmas, initNoiseSigmaFor, predictOriginal, scaleBySigma } from "./sigma-schedule.ts";
import { readSigmaSchedulerConfig, type SigmaSchedulerConfig } from "./sigma-scheduler-config.ts";
import { StepIndex } from "./step-index.ts";
import type { NoiseSource, Scheduler } from "./scheduler.ts";

const f32 = Math.fround;
const LMS_ORDER = 4;

// 8-point Gauss-Legendre nodes and weights on [-1, 1]: exact for polynomials up to degree 15, and
// the LMS integrand is a polynomial of degree order - 1 <= 3 (diffusers uses scipy's quad).
const GL_NODES = [
  -0.9602898564975363, -0.7966664774136267, -0.5255324099163290, -0.1834346424956498,
  0.1834346424956498, 0.5255324099163290, 0.7966664774136267, 0.9602898564975363,
];
const GL_WEIGHTS = [
  0.1012285362903763, 0.2223810344533745, 0.3137066458778873, 0.3626837833783620,
  0.3626837833783620, 0.3137066458778873, 0.2223810344533745, 0.1012285362903763,
];

export function integratePolynomial(fn: (x: number) => number, from: number, to: number): number {
  const half = (to - from) / 2;
  const mid = (to + from) / 2;
  let sum = 0;
  for (let i = 0; i < GL_NODES.length; i++) sum += GL_WEIGHTS[i] * fn(mid + half * GL_NODES[i]);
  return sum * half;
}

export class LMSDiscreteScheduler implements Scheduler {
  readonly order = 1;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float32Array = new Float32Array(0);
  private readonly config: SigmaSchedulerConfig<PredictionType>;
  private readonly index = new StepIndex();
  private derivatives: Float32Array[] = [];

  constructor(rawConfig: unknown) {
    this.config = readSigmaSchedulerConfig(asRawConfig(rawConfig), "LMSDiscreteScheduler", {
      predictionTypes: PREDICTION_TYPES,
      karrasSigmas: true,
    });
  }

  get initNoiseSigma(): number {
    return initNoiseSigmaFor(this.sigmas, this.config.spacing);
  }

  setTimesteps(numInferenceSteps: number): void {
    const { timesteps, sigmas } = inferenceSigmas(this.config, numInferenceSteps, { roundKarrasTimesteps: false });
    this.timesteps = timesteps;
    this.sigmas = sigmas;
    this.index.reset();
    this.derivatives = [];
  }

  setBeginIndex(beginIndex: number): void {
    this.index.setBegin(beginIndex);
  }

  scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    return scaleBySigma(sample, this.sigmas[this.index.current(this.timesteps, timestep)]);
  }

  /** The weight of the derivative `currentOrder` steps back, integrating its Lagrange basis polynomial. */
  lmsCoefficient(order: number, t: number, currentOrder: number): number {
    const sigmas = this.sigmas;
    const basis = (tau: number): number => {
      let product = 1;
      for (let k = 0; k < order; k++) {
        if (k === currentOrder) continue;
        product *= (tau - sigmas[t - k]) / (sigmas[t - currentOrder] - sigmas[t - k]);
      }
      return product;
    };
    return integratePolynomial(basis, sigmas[t], sigmas[t + 1]);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, _noise?: NoiseSource): Float32Array {
    const i = this.index.current(this.timesteps, timestep);
    const sigma = this.sigmas[i];
    const predOriginal = predictOriginal(this.config.predictionType, sigma, sample, modelOutput);
    const derivative = new Float32Array(sample.length);
    for (let k = 0; k < sample.length; k++) derivative[k] = f32(sample[k] - predOriginal[k]) / sigma;
    this.derivatives.push(derivative);
    if (this.derivatives.length > LMS_ORDER) this.derivatives.shift();

    // The order follows the absolute step index, as in diffusers; a run started mid-schedule (strength < 1)
    // has fewer derivatives than that, and diffusers' zip(coefficients, reversed(derivatives)) sums only
    // the ones it has: the first coefficients of the full-order formula.
    const order = Math.min(i + 1, LMS_ORDER);
    const terms = Math.min(order, this.derivatives.length);
    const coefficients = Array.from({ length: terms }, (_, currentOrder) => f32(this.lmsCoefficient(order, i, currentOrder)));
    const newestFirst = [...this.derivatives].reverse();
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) {
      // Python's sum(): left to right over the newest-first derivatives, each term rounded to float32.
      let total = f32(coefficients[0] * newestFirst[0][k]);
      for (let j = 1; j < terms; j++) total = f32(total + f32(coefficients[j] * newestFirst[j][k]));
      out[k] = sample[k] + total;
    }
    this.index.advance();
    return out;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return addNoiseAtSigma(original, noise, this.sigmas[this.index.forNoise(this.timesteps, timestep)]);
  }
}
