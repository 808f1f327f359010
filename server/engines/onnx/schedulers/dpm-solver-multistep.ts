/**
 * DPMSolverMultistepScheduler (Lu et al. 2022, DPM-Solver / DPM-Solver++), after diffusers'
 * scheduling_dpmsolver_multistep.py; deterministic algorithms (dpmsolver++, dpmsolver), orders 1-3.
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
import { dpmTimesteps, DpmSolverMath } from "./dpm-solver-math.ts";
import type { NoiseSource, Scheduler } from "./scheduler.ts";

export class DPMSolverMultistepScheduler implements Scheduler {
  readonly order = 1;
  readonly initNoiseSigma = 1.0;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float32Array = new Float32Array(0);
  private readonly training: TrainingSigmas;
  private readonly numTrainTimesteps: number;
  private readonly solverOrder: number;
  private readonly lowerOrderFinal: boolean;
  private readonly eulerAtFinal: boolean;
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;
  private readonly useKarrasSigmas: boolean;
  private readonly lambdaMinClipped: number;
  private readonly betaSchedule: string;
  private readonly math: DpmSolverMath;
  private readonly index = new StepIndex(true);
  private modelOutputs: (Float32Array | null)[] = [];
  private lowerOrderNums = 0;

  /** `batchSize` only matters for dynamic thresholding, which is computed per batch item. */
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
    this.eulerAtFinal = readBoolean(config, "euler_at_final", false);
    this.useKarrasSigmas = readBoolean(config, "use_karras_sigmas", false);
    this.lambdaMinClipped = readNumber(config, "lambda_min_clipped", -Infinity);
    this.spacing = readChoice(config, "timestep_spacing", TIMESTEP_SPACINGS, "linspace");
    this.stepsOffset = readInteger(config, "steps_offset", 0);
    readChoice(config, "variance_type", ["none"], "none");
    for (const key of ["use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas", "rescale_betas_zero_snr", "use_dynamic_shifting"]) {
      if (readBoolean(config, key, false)) throw new Error(`DPMSolverMultistepScheduler: ${key} is not supported`);
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
    this.lowerOrderNums = 0;
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
    const n = this.timesteps.length;
    const lowerOrderFinal =
      i === n - 1 && (this.eulerAtFinal || (this.lowerOrderFinal && n < 15) || this.math.options.finalSigmasType === "zero");
    const lowerOrderSecond = i === n - 2 && this.lowerOrderFinal && n < 15;

    const converted = this.math.convertModelOutput(modelOutput, sample, this.sigmas[i]);
    for (let k = 0; k < this.solverOrder - 1; k++) this.modelOutputs[k] = this.modelOutputs[k + 1];
    this.modelOutputs[this.solverOrder - 1] = converted;
    const outputs = this.modelOutputs.filter((m): m is Float32Array => m !== null);

    let prev: Float32Array;
    if (this.solverOrder === 1 || this.lowerOrderNums < 1 || lowerOrderFinal) {
      prev = this.math.firstOrderUpdate(converted, sample, this.sigmas[i + 1], this.sigmas[i]);
    } else if (this.solverOrder === 2 || this.lowerOrderNums < 2 || lowerOrderSecond) {
      prev = this.math.secondOrderUpdate(outputs, sample, [this.sigmas[i + 1], this.sigmas[i], this.sigmas[i - 1]]);
    } else {
      prev = this.math.thirdOrderUpdate(outputs, sample, [this.sigmas[i + 1], this.sigmas[i], this.sigmas[i - 1], this.sigmas[i - 2]]);
    }
    if (this.lowerOrderNums < this.solverOrder) this.lowerOrderNums++;
    this.index.advance();
    return prev;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return this.math.addNoise(original, noise, this.sigmas[this.index.forNoise(this.timesteps, timestep)]);
  }
}
