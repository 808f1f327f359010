/**
 * The DPM-Solver arithmetic shared by the multistep and singlestep schedulers (diffusers'
 * convert_model_output, the first-order update, and the multistep second/third-order updates),
 * in float32 like diffusers' tensors, plus their timestep / sigma schedule.
 */
import type { PredictionType } from "./config.ts";
import type { DpmSolverConfig } from "./dpm-solver-config.ts";
import { karrasSigmas, npArangeDown, npInterpOnIndices, npLinspace, roundHalfEven, sigmaToT, thresholdSample } from "./noise-schedule.ts";

const f32 = Math.fround;

export interface DpmSolverOptions {
  algorithm: "dpmsolver" | "dpmsolver++";
  solverType: "midpoint" | "heun";
  predictionType: PredictionType;
  finalSigmasType: "zero" | "sigma_min";
  thresholding: boolean;
  dynamicThresholdingRatio: number;
  sampleMaxValue: number;
  batchSize: number;
}

/** alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t (VP schedule). */
export function alphaSigma(sigma: number): { alpha: number; sigmaT: number; lambda: number } {
  const alpha = f32(1 / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
  const sigmaT = f32(sigma * alpha);
  return { alpha, sigmaT, lambda: f32(f32(Math.log(alpha)) - f32(Math.log(sigmaT))) };
}

export class DpmSolverMath {
  constructor(readonly options: DpmSolverOptions) {}

  /** The data prediction x0 (dpmsolver++) or the noise prediction (dpmsolver) the solver integrates. */
  convertModelOutput(modelOutput: Float32Array, sample: Float32Array, sigma: number): Float32Array {
    const { alpha, sigmaT } = alphaSigma(sigma);
    const o = this.options;
    const x0 = (): Float32Array => {
      if (o.predictionType === "sample") return modelOutput;
      if (o.predictionType === "epsilon") return sample.map((x, i) => f32(f32(x - f32(sigmaT * modelOutput[i])) / alpha));
      return sample.map((x, i) => f32(f32(alpha * x) - f32(sigmaT * modelOutput[i])));
    };
    if (o.algorithm === "dpmsolver++") {
      const prediction = x0();
      return o.thresholding ? thresholdSample(prediction, o.batchSize, o.dynamicThresholdingRatio, o.sampleMaxValue) : prediction;
    }
    let epsilon: Float32Array;
    if (o.predictionType === "epsilon") epsilon = modelOutput;
    else if (o.predictionType === "sample") epsilon = sample.map((x, i) => f32(f32(x - f32(alpha * modelOutput[i])) / sigmaT));
    else epsilon = sample.map((x, i) => f32(f32(alpha * modelOutput[i]) + f32(sigmaT * x)));
    if (o.thresholding) {
      const x0Pred = thresholdSample(
        sample.map((x, i) => f32(f32(x - f32(sigmaT * epsilon[i])) / alpha)),
        o.batchSize, o.dynamicThresholdingRatio, o.sampleMaxValue,
      );
      epsilon = sample.map((x, i) => f32(f32(x - f32(alpha * x0Pred[i])) / sigmaT));
    }
    return epsilon;
  }

  /** First-order DPM-Solver (DDIM) from noise level sigmaS to sigmaNext. */
  firstOrderUpdate(m: Float32Array, sample: Float32Array, sigmaNext: number, sigmaS: number): Float32Array {
    const t = alphaSigma(sigmaNext);
    const s = alphaSigma(sigmaS);
    const h = f32(t.lambda - s.lambda);
    if (this.options.algorithm === "dpmsolver++") {
      const a = f32(t.sigmaT / s.sigmaT);
      const b = f32(t.alpha * f32(f32(Math.exp(-h)) - 1));
      return sample.map((x, i) => f32(f32(a * x) - f32(b * m[i])));
    }
    const a = f32(t.alpha / s.alpha);
    const b = f32(t.sigmaT * f32(f32(Math.exp(h)) - 1));
    return sample.map((x, i) => f32(f32(a * x) - f32(b * m[i])));
  }

  /** Second-order multistep update; `outputs` oldest first, `sigmas` = [next, s0, s1]. */
  secondOrderUpdate(outputs: Float32Array[], sample: Float32Array, sigmas: [number, number, number]): Float32Array {
    const t = alphaSigma(sigmas[0]);
    const s0 = alphaSigma(sigmas[1]);
    const s1 = alphaSigma(sigmas[2]);
    const m0 = outputs[outputs.length - 1];
    const m1 = outputs[outputs.length - 2];
    const h = f32(t.lambda - s0.lambda);
    const h0 = f32(s0.lambda - s1.lambda);
    const r0 = f32(h0 / h);
    const invR0 = f32(1 / r0);
    const out = new Float32Array(sample.length);
    if (this.options.algorithm === "dpmsolver++") {
      const a = f32(t.sigmaT / s0.sigmaT);
      const expm1 = f32(f32(Math.exp(-h)) - 1);
      const b = f32(t.alpha * expm1);
      const c = this.options.solverType === "midpoint" ? f32(0.5 * b) : f32(t.alpha * f32(f32(expm1 / h) + 1));
      for (let i = 0; i < out.length; i++) {
        const d1 = f32(invR0 * f32(m0[i] - m1[i]));
        const base = f32(f32(a * sample[i]) - f32(b * m0[i]));
        out[i] = this.options.solverType === "midpoint" ? f32(base - f32(c * d1)) : f32(base + f32(c * d1));
      }
    } else {
      const a = f32(t.alpha / s0.alpha);
      const expm1 = f32(f32(Math.exp(h)) - 1);
      const b = f32(t.sigmaT * expm1);
      const c = this.options.solverType === "midpoint" ? f32(0.5 * b) : f32(t.sigmaT * f32(f32(expm1 / h) - 1));
      for (let i = 0; i < out.length; i++) {
        const d1 = f32(invR0 * f32(m0[i] - m1[i]));
        out[i] = f32(f32(f32(a * sample[i]) - f32(b * m0[i])) - f32(c * d1));
      }
    }
    return out;
  }

  /** Third-order multistep update; `outputs` oldest first, `sigmas` = [next, s0, s1, s2]. */
  thirdOrderUpdate(outputs: Float32Array[], sample: Float32Array, sigmas: [number, number, number, number]): Float32Array {
    const t = alphaSigma(sigmas[0]);
    const s0 = alphaSigma(sigmas[1]);
    const s1 = alphaSigma(sigmas[2]);
    const s2 = alphaSigma(sigmas[3]);
    const n = outputs.length;
    const [m0, m1, m2] = [outputs[n - 1], outputs[n - 2], outputs[n - 3]];
    const h = f32(t.lambda - s0.lambda);
    const h0 = f32(s0.lambda - s1.lambda);
    const h1 = f32(s1.lambda - s2.lambda);
    const r0 = f32(h0 / h);
    const r1 = f32(h1 / h);
    const invR0 = f32(1 / r0);
    const invR1 = f32(1 / r1);
    const w1 = f32(r0 / f32(r0 + r1));
    const w2 = f32(1 / f32(r0 + r1));
    const hSquared = f32(h * h);
    const out = new Float32Array(sample.length);
    let a: number, c0: number, c1: number, c2: number;
    if (this.options.algorithm === "dpmsolver++") {
      const e = f32(f32(Math.exp(-h)) - 1);
      a = f32(t.sigmaT / s0.sigmaT);
      c0 = f32(-f32(t.alpha * e));
      c1 = f32(t.alpha * f32(f32(e / h) + 1));
      c2 = f32(-f32(t.alpha * f32(f32(f32(e + h) / hSquared) - 0.5)));
    } else {
      const e = f32(f32(Math.exp(h)) - 1);
      a = f32(t.alpha / s0.alpha);
      c0 = f32(-f32(t.sigmaT * e));
      c1 = f32(-f32(t.sigmaT * f32(f32(e / h) - 1)));
      c2 = f32(-f32(t.sigmaT * f32(f32(f32(e - h) / hSquared) - 0.5)));
    }
    for (let i = 0; i < out.length; i++) {
      const d10 = f32(invR0 * f32(m0[i] - m1[i]));
      const d11 = f32(invR1 * f32(m1[i] - m2[i]));
      const d1 = f32(d10 + f32(w1 * f32(d10 - d11)));
      const d2 = f32(w2 * f32(d10 - d11));
      out[i] = f32(f32(f32(f32(a * sample[i]) + f32(c0 * m0[i])) + f32(c1 * d1)) + f32(c2 * d2));
    }
    return out;
  }

  addNoise(original: Float32Array, noise: Float32Array, sigma: number): Float32Array {
    const { alpha, sigmaT } = alphaSigma(sigma);
    return original.map((x, i) => f32(f32(alpha * x) + f32(sigmaT * noise[i])));
  }
}

/**
 * DPM-Solver's integer timesteps (spaced over [0, last_timestep) where last_timestep drops the
 * steps whose lambda is below lambda_min_clipped) and their sigmas, plus the final sigma.
 */
export function dpmTimesteps(
  config: DpmSolverConfig,
  numInferenceSteps: number,
): { timesteps: Float64Array; sigmas: Float32Array } {
  const n = numInferenceSteps;
  if (!Number.isInteger(n) || n < 1) throw new Error(`num_inference_steps must be a positive integer, got ${n}`);
  const training = config.training;
  const T = config.numTrainTimesteps;
  // searchsorted(flip(lambda_t), lambda_min_clipped): how many lambdas lie below the clip.
  let clipped = 0;
  for (const a of training.alphasCumprod) {
    const lambda = f32(f32(Math.log(f32(Math.sqrt(a)))) - f32(Math.log(f32(Math.sqrt(f32(1 - a))))));
    if (lambda < config.lambdaMinClipped) clipped++;
  }
  const lastTimestep = T - clipped;
  let timesteps: number[];
  if (config.spacing === "linspace") {
    timesteps = Array.from(npLinspace(0, lastTimestep - 1, n + 1), roundHalfEven).reverse().slice(0, -1);
  } else if (config.spacing === "leading") {
    const ratio = Math.floor(lastTimestep / (n + 1));
    timesteps = Array.from({ length: n }, (_, i) => (n - i) * ratio + config.stepsOffset);
  } else {
    timesteps = npArangeDown(lastTimestep, T / n).map((v) => roundHalfEven(v) - 1);
  }
  let sigmas: Float64Array;
  if (config.useKarrasSigmas) {
    // diffusers rounds the Karras timesteps except for squaredcos_cap_v2, where the int64 cast truncates.
    const roundKarrasTimesteps = config.betaSchedule !== "squaredcos_cap_v2";
    const ascending = training.sigmas;
    sigmas = karrasSigmas(ascending[0], ascending[ascending.length - 1], n);
    timesteps = Array.from(sigmas, (sigma) => {
      const t = sigmaToT(sigma, training.logSigmas);
      return roundKarrasTimesteps ? roundHalfEven(t) : Math.trunc(t);
    });
  } else {
    sigmas = npInterpOnIndices(timesteps, training.sigmas);
  }
  const a0 = training.alphasCumprod[0];
  const sigmaLast = config.solver.finalSigmasType === "zero" ? 0 : f32(Math.sqrt(f32(f32(1 - a0) / a0)));
  const withLast = new Float32Array(sigmas.length + 1);
  withLast.set(sigmas);
  withLast[sigmas.length] = sigmaLast;
  return { timesteps: Float64Array.from(timesteps), sigmas: withLast };
}
