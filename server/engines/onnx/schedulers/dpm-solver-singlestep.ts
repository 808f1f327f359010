/**
 * DPMSolverSinglestepScheduler (Lu et al. 2022, singlestep DPM-Solver / DPM-Solver++), after
 * diffusers' scheduling_dpmsolver_singlestep.py: each block of `order` model calls restarts from the
 * sample at the block's first step.
 */
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
import { TrainingSigmas } from "./sigma-schedule.ts";
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
  private readonly training: TrainingSigmas;
  private readonly numTrainTimesteps: number;
  private readonly betaSchedule: string;
  private readonly solverOrder: number;
  private lowerOrderFinal: boolean;
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;
  private readonly useKarrasSigmas: boolean;
  private readonly lambdaMinClipped: number;
  private readonly math: DpmSolverMath;
  private readonly index = new StepIndex(true);
  private modelOutputs: (Float32Array | null)[] = [];
  private orderList: number[] = [];
  private blockSample: Float32Array | null = null;

  constructor(rawConfig: unknown, options: { batchSize?: number } = {}) {
    const config = asRawConfig(rawConfig);
    const betaConfig = readBetaConfig(config);
    this.numTrainTimesteps = betaConfig.numTrainTimesteps;
    this.betaSchedule = betaConfig.betaSchedule;
    this.training = new TrainingSigmas(betaConfig);
    this.solverOrder = readInteger(config, "solver_order", 2);
    if (this.solverOrder < 1 || this.solverOrder > 3) throw new Error(`solver_order must be 1, 2 or 3, got ${this.solverOrder}`);
    const predictionType: PredictionType = readChoice(config, "prediction_type", PREDICTION_TYPES, "epsilon");
    let algorithm = readChoice(config, "algorithm_type", ["dpmsolver", "dpmsolver++", "deis"], "dpmsolver++");
    if (algorithm === "deis") algorithm = "dpmsolver++";
    let solverType = readChoice(config, "solver_type", ["midpoint", "heun", "logrho", "bh1", "bh2"], "midpoint");
    if (solverType !== "heun") solverType = "midpoint";
    const finalSigmasType = readChoice(config, "final_sigmas_type", ["zero", "sigma_min"], "zero");
    if (algorithm === "dpmsolver" && finalSigmasType === "zero") {
      throw new Error("final_sigmas_type zero is not supported for algorithm_type dpmsolver; choose sigma_min");
    }
    this.lowerOrderFinal = readBoolean(config, "lower_order_final", true);
    this.useKarrasSigmas = readBoolean(config, "use_karras_sigmas", false);
    this.lambdaMinClipped = readNumber(config, "lambda_min_clipped", -Infinity);
    this.spacing = readChoice(config, "timestep_spacing", TIMESTEP_SPACINGS, "linspace");
    this.stepsOffset = readInteger(config, "steps_offset", 0);
    readChoice(config, "variance_type", ["none"], "none");
    for (const key of ["use_exponential_sigmas", "use_beta_sigmas", "use_flow_sigmas"]) {
      if (readBoolean(config, key, false)) throw new Error(`DPMSolverSinglestepScheduler: ${key} is not supported`);
    }
    this.math = new DpmSolverMath({
      algorithm,
      solverType,
      predictionType,
      finalSigmasType,
      thresholding: readBoolean(config, "thresholding", false),
      dynamicThresholdingRatio: readNumber(config, "dynamic_thresholding_ratio", 0.995),
      sampleMaxValue: readNumber(config, "sample_max_value", 1.0),
      batchSize: options.batchSize ?? 1,
    });
  }

  setTimesteps(numInferenceSteps: number): void {
    const finalSigmaZero = this.math.options.finalSigmasType === "zero";
    const { timesteps, sigmas } = dpmTimesteps(this.training, {
      spacing: this.spacing,
      numTrainTimesteps: this.numTrainTimesteps,
      numInferenceSteps,
      stepsOffset: this.stepsOffset,
      useKarrasSigmas: this.useKarrasSigmas,
      roundKarrasTimesteps: this.betaSchedule !== "squaredcos_cap_v2",
      lambdaMinClipped: this.lambdaMinClipped,
      finalSigmasType: this.math.options.finalSigmasType,
    });
    this.timesteps = timesteps;
    this.sigmas = sigmas;
    this.modelOutputs = new Array<Float32Array | null>(this.solverOrder).fill(null);
    this.blockSample = null;
    // diffusers switches lower_order_final on (persistently) when the steps do not divide evenly.
    if (!this.lowerOrderFinal && (numInferenceSteps % this.solverOrder !== 0 || finalSigmaZero)) this.lowerOrderFinal = true;
    this.orderList = singlestepOrders(numInferenceSteps, this.solverOrder, this.lowerOrderFinal, finalSigmaZero);
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
    for (let k = 0; k < this.solverOrder - 1; k++) this.modelOutputs[k] = this.modelOutputs[k + 1];
    this.modelOutputs[this.solverOrder - 1] = converted;
    let order = this.orderList[i];
    while (this.modelOutputs[this.solverOrder - order] === null) order--;
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
