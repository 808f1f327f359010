/**
 * DPMSolverMultistepScheduler (Lu et al. 2022, DPM-Solver / DPM-Solver++), after diffusers'
 * scheduling_dpmsolver_multistep.py; deterministic algorithms (dpmsolver++, dpmsolver), orders 1-3.
 */
import { asRawConfig, readBoolean, rejectUnsupportedFlags } from "./config.ts";
import { readDpmSolverConfig, type DpmSolverConfig } from "./dpm-solver-config.ts";
import { StepIndex } from "./step-index.ts";
import { dpmTimesteps, DpmSolverMath } from "./dpm-solver-math.ts";
import type { NoiseSource, Scheduler } from "./scheduler.ts";

export class DPMSolverMultistepScheduler implements Scheduler {
  readonly order = 1;
  readonly initNoiseSigma = 1.0;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float32Array = new Float32Array(0);
  private readonly config: DpmSolverConfig;
  private readonly eulerAtFinal: boolean;
  private readonly math: DpmSolverMath;
  private readonly index = new StepIndex(true);
  private modelOutputs: (Float32Array | null)[] = [];
  private lowerOrderNums = 0;

  /** `batchSize` only matters for dynamic thresholding, which is computed per batch item. */
  constructor(rawConfig: unknown, options: { batchSize?: number } = {}) {
    const config = asRawConfig(rawConfig);
    this.config = readDpmSolverConfig(config, "DPMSolverMultistepScheduler", options.batchSize ?? 1);
    this.eulerAtFinal = readBoolean(config, "euler_at_final", false);
    rejectUnsupportedFlags(config, "DPMSolverMultistepScheduler", [
      "use_lu_lambdas",
      "use_flow_sigmas",
      "rescale_betas_zero_snr",
      "use_dynamic_shifting",
    ]);
    this.math = new DpmSolverMath(this.config.solver);
  }

  setTimesteps(numInferenceSteps: number): void {
    const { timesteps, sigmas } = dpmTimesteps(this.config, numInferenceSteps);
    this.timesteps = timesteps;
    this.sigmas = sigmas;
    this.modelOutputs = new Array<Float32Array | null>(this.config.solverOrder).fill(null);
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
    // lower_order_final: under 15 steps the last steps drop to lower orders, which keeps them stable.
    const shortRunLowerOrder = this.config.lowerOrderFinal && n < 15;
    const lowerOrderFinal =
      i === n - 1 && (this.eulerAtFinal || shortRunLowerOrder || this.math.options.finalSigmasType === "zero");
    const lowerOrderSecond = i === n - 2 && shortRunLowerOrder;

    const converted = this.math.convertModelOutput(modelOutput, sample, this.sigmas[i]);
    for (let k = 0; k < this.config.solverOrder - 1; k++) this.modelOutputs[k] = this.modelOutputs[k + 1];
    this.modelOutputs[this.config.solverOrder - 1] = converted;
    const outputs = this.modelOutputs.filter((m): m is Float32Array => m !== null);

    let prev: Float32Array;
    if (this.config.solverOrder === 1 || this.lowerOrderNums < 1 || lowerOrderFinal) {
      prev = this.math.firstOrderUpdate(converted, sample, this.sigmas[i + 1], this.sigmas[i]);
    } else if (this.config.solverOrder === 2 || this.lowerOrderNums < 2 || lowerOrderSecond) {
      prev = this.math.secondOrderUpdate(outputs, sample, [this.sigmas[i + 1], this.sigmas[i], this.sigmas[i - 1]]);
    } else {
      prev = this.math.thirdOrderUpdate(outputs, sample, [this.sigmas[i + 1], this.sigmas[i], this.sigmas[i - 1], this.sigmas[i - 2]]);
    }
    if (this.lowerOrderNums < this.config.solverOrder) this.lowerOrderNums++;
    this.index.advance();
    return prev;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return this.math.addNoise(original, noise, this.sigmas[this.index.forNoise(this.timesteps, timestep)]);
  }
}
