/**
 * DPMSolverSinglestepScheduler (Lu et al. 2022, singlestep DPM-Solver / DPM-Solver++), after
 * diffusers' scheduling_dpmsolver_singlestep.py: each block of `order` model calls restarts from the
 * sample at the block's first step.
 */
import { asRawConfig, rejectUnsupportedFlags } from "./config.ts";
import { readDpmSolverConfig, type DpmSolverConfig } from "./dpm-solver-config.ts";
import { StepIndex } from "./step-index.ts";
import { alphaSigma, dpmTimesteps, DpmSolverMath } from "./dpm-solver-math.ts";
import type { NoiseSource, Scheduler } from "./scheduler.ts";

const f32 = Math.fround;

/** diffusers' get_order_list: the solver order used at each step. */
export function singlestepOrders(steps: number, order: number, lowerOrderFinal: boolean, finalSigmaZero: boolean): number[] {
  const repeat = (pattern: number[], times: number): number[] => Array.from({ length: Math.max(times, 0) }, () => pattern).flat();
  let orders: number[];
  if (lowerOrderFinal) {
    if (order === 3) {
      if (steps % 3 === 0) orders = [...repeat([1, 2, 3], steps / 3 - 1), 1, 2, 1];
      else if (steps % 3 === 1) orders = [...repeat([1, 2, 3], Math.floor(steps / 3)), 1];
      else orders = [...repeat([1, 2, 3], Math.floor(steps / 3)), 1, 2];
    } else if (order === 2) {
      orders = steps % 2 === 0 ? repeat([1, 2], steps / 2) : [...repeat([1, 2], Math.floor(steps / 2)), 1];
    } else {
      orders = repeat([1], steps);
    }
  } else if (order === 3) {
    orders = repeat([1, 2, 3], Math.floor(steps / 3));
  } else if (order === 2) {
    orders = repeat([1, 2], Math.floor(steps / 2));
  } else {
    orders = repeat([1], steps);
  }
  if (finalSigmaZero && orders.length > 0) orders[orders.length - 1] = 1;
  return orders;
}

export class DPMSolverSinglestepScheduler implements Scheduler {
  readonly order = 1;
  readonly initNoiseSigma = 1.0;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float32Array = new Float32Array(0);
  private readonly config: DpmSolverConfig;
  private lowerOrderFinal: boolean;
  private readonly math: DpmSolverMath;
  private readonly index = new StepIndex(true);
  private modelOutputs: (Float32Array | null)[] = [];
  private orderList: number[] = [];
  private blockSample: Float32Array | null = null;

  constructor(rawConfig: unknown, options: { batchSize?: number } = {}) {
    const config = asRawConfig(rawConfig);
    this.config = readDpmSolverConfig(config, "DPMSolverSinglestepScheduler", options.batchSize ?? 1);
    this.lowerOrderFinal = this.config.lowerOrderFinal;
    rejectUnsupportedFlags(config, "DPMSolverSinglestepScheduler", ["use_flow_sigmas"]);
    this.math = new DpmSolverMath(this.config.solver);
  }

  setTimesteps(numInferenceSteps: number): void {
    const finalSigmaZero = this.math.options.finalSigmasType === "zero";
    const { timesteps, sigmas } = dpmTimesteps(this.config, numInferenceSteps);
    this.timesteps = timesteps;
    this.sigmas = sigmas;
    this.modelOutputs = new Array<Float32Array | null>(this.config.solverOrder).fill(null);
    this.blockSample = null;
    // diffusers switches lower_order_final on (persistently) when the steps do not divide evenly.
    if (!this.lowerOrderFinal && (numInferenceSteps % this.config.solverOrder !== 0 || finalSigmaZero)) {
      this.lowerOrderFinal = true;
    }
    this.orderList = singlestepOrders(numInferenceSteps, this.config.solverOrder, this.lowerOrderFinal, finalSigmaZero);
    this.index.reset();
  }

  setBeginIndex(beginIndex: number): void {
    this.index.setBegin(beginIndex);
  }

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, _noise?: NoiseSource): Float32Array {
    if (this.timesteps.length === 0) throw new Error("call setTimesteps before step");
    const i = this.index.current(this.timesteps, timestep);
    const converted = this.math.convertModelOutput(modelOutput, sample, this.sigmas[i]);
    for (let k = 0; k < this.config.solverOrder - 1; k++) this.modelOutputs[k] = this.modelOutputs[k + 1];
    this.modelOutputs[this.config.solverOrder - 1] = converted;
    let order = this.orderList[i];
    while (this.modelOutputs[this.config.solverOrder - order] === null) order--;
    if (order === 1) this.blockSample = sample;
    const start = this.blockSample ?? sample;
    const outputs = this.modelOutputs.filter((m): m is Float32Array => m !== null);
    let prev: Float32Array;
    if (order === 1) prev = this.math.firstOrderUpdate(converted, start, this.sigmas[i + 1], this.sigmas[i]);
    else if (order === 2) prev = this.secondOrder(outputs, start, i);
    else prev = this.thirdOrder(outputs, start, i);
    this.index.advance();
    return prev;
  }

  private secondOrder(outputs: Float32Array[], sample: Float32Array, i: number): Float32Array {
    const t = alphaSigma(this.sigmas[i + 1]);
    const s0 = alphaSigma(this.sigmas[i]);
    const s1 = alphaSigma(this.sigmas[i - 1]);
    const m0 = outputs[outputs.length - 1];
    const m1 = outputs[outputs.length - 2];
    const h = f32(t.lambda - s1.lambda);
    const h0 = f32(s0.lambda - s1.lambda);
    const invR0 = f32(1 / f32(h0 / h));
    const plus = this.math.options.algorithm === "dpmsolver++";
    const e = plus ? f32(f32(Math.exp(-h)) - 1) : f32(f32(Math.exp(h)) - 1);
    const a = plus ? f32(t.sigmaT / s1.sigmaT) : f32(t.alpha / s1.alpha);
    const scale = plus ? t.alpha : t.sigmaT;
    const b = f32(scale * e);
    const midpoint = this.math.options.solverType === "midpoint";
    const c = midpoint ? f32(0.5 * b) : f32(scale * f32(f32(e / h) + (plus ? 1 : -1)));
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) {
      const d1 = f32(invR0 * f32(m0[k] - m1[k]));
      const base = f32(f32(a * sample[k]) - f32(b * m1[k]));
      out[k] = plus && !midpoint ? f32(base + f32(c * d1)) : f32(base - f32(c * d1));
    }
    return out;
  }

  private thirdOrder(outputs: Float32Array[], sample: Float32Array, i: number): Float32Array {
    const t = alphaSigma(this.sigmas[i + 1]);
    const s0 = alphaSigma(this.sigmas[i]);
    const s1 = alphaSigma(this.sigmas[i - 1]);
    const s2 = alphaSigma(this.sigmas[i - 2]);
    const n = outputs.length;
    const [m0, m1, m2] = [outputs[n - 1], outputs[n - 2], outputs[n - 3]];
    const h = f32(t.lambda - s2.lambda);
    const r0 = f32(f32(s0.lambda - s2.lambda) / h);
    const r1 = f32(f32(s1.lambda - s2.lambda) / h);
    const invR0 = f32(1 / r0);
    const invR1 = f32(1 / r1);
    const rDiff = f32(r0 - r1);
    const plus = this.math.options.algorithm === "dpmsolver++";
    const midpoint = this.math.options.solverType === "midpoint";
    const e = plus ? f32(f32(Math.exp(-h)) - 1) : f32(f32(Math.exp(h)) - 1);
    const a = plus ? f32(t.sigmaT / s2.sigmaT) : f32(t.alpha / s2.alpha);
    const scale = plus ? t.alpha : t.sigmaT;
    const c0 = f32(-f32(scale * e));
    const c1 = plus ? f32(scale * f32(f32(e / h) + 1)) : f32(-f32(scale * f32(f32(e / h) - 1)));
    const hSquared = f32(h * h);
    const c2 = plus
      ? f32(-f32(scale * f32(f32(f32(e + h) / hSquared) - 0.5)))
      : f32(-f32(scale * f32(f32(f32(e - h) / hSquared) - 0.5)));
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) {
      const d10 = f32(invR1 * f32(m1[k] - m2[k]));
      const d11 = f32(invR0 * f32(m0[k] - m2[k]));
      const base = f32(f32(a * sample[k]) + f32(c0 * m2[k]));
      if (midpoint) {
        out[k] = f32(base + f32(c1 * d11));
      } else {
        const d1 = f32(f32(f32(r0 * d10) - f32(r1 * d11)) / rDiff);
        const d2 = f32(f32(2 * f32(d11 - d10)) / rDiff);
        out[k] = f32(f32(base + f32(c1 * d1)) + f32(c2 * d2));
      }
    }
    return out;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return this.math.addNoise(original, noise, this.sigmas[this.index.forNoise(this.timesteps, timestep)]);
  }
}
