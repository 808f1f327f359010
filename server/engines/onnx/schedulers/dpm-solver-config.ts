/**
 * The config keys the two DPM-Solver schedulers (multistep and singlestep) read the same way, with
 * diffusers' defaults for both, and the training sigmas they imply. Each class reads the keys only
 * it has (euler_at_final, use_lu_lambdas, ...) itself.
 */
import {
  PREDICTION_TYPES,
  TIMESTEP_SPACINGS,
  readBetaConfig,
  readBoolean,
  readChoice,
  readInteger,
  readNumber,
  readUseKarrasSigmas,
  type BetaSchedule,
  type RawConfig,
  type TimestepSpacing,
} from "./config.ts";
import type { DpmSolverOptions } from "./dpm-solver-math.ts";
import { TrainingSigmas } from "./sigma-schedule.ts";

export interface DpmSolverConfig {
  training: TrainingSigmas;
  numTrainTimesteps: number;
  betaSchedule: BetaSchedule;
  solverOrder: number;
  lowerOrderFinal: boolean;
  useKarrasSigmas: boolean;
  lambdaMinClipped: number;
  spacing: TimestepSpacing;
  stepsOffset: number;
  /** What DpmSolverMath needs. */
  solver: DpmSolverOptions;
}

/** `batchSize` only matters for dynamic thresholding, which is computed per batch item. */
export function readDpmSolverConfig(config: RawConfig, className: string, batchSize: number): DpmSolverConfig {
  const betaConfig = readBetaConfig(config);
  const solverOrder = readInteger(config, "solver_order", 2);
  if (solverOrder < 1 || solverOrder > 3) throw new Error(`solver_order must be 1, 2 or 3, got ${solverOrder}`);
  const predictionType = readChoice(config, "prediction_type", PREDICTION_TYPES, "epsilon");
  let algorithm = readChoice(config, "algorithm_type", ["dpmsolver", "dpmsolver++", "deis"], "dpmsolver++");
  if (algorithm === "deis") algorithm = "dpmsolver++";
  let solverType = readChoice(config, "solver_type", ["midpoint", "heun", "logrho", "bh1", "bh2"], "midpoint");
  if (solverType !== "heun") solverType = "midpoint";
  const finalSigmasType = readChoice(config, "final_sigmas_type", ["zero", "sigma_min"], "zero");
  if (algorithm === "dpmsolver" && finalSigmasType === "zero") {
    throw new Error("final_sigmas_type zero is not supported for algorithm_type dpmsolver; choose sigma_min");
  }
  const lowerOrderFinal = readBoolean(config, "lower_order_final", true);
  const useKarrasSigmas = readUseKarrasSigmas(config, className);
  const lambdaMinClipped = readNumber(config, "lambda_min_clipped", -Infinity);
  const spacing = readChoice(config, "timestep_spacing", TIMESTEP_SPACINGS, "linspace");
  const stepsOffset = readInteger(config, "steps_offset", 0);
  readChoice(config, "variance_type", ["none"], "none");
  return {
    training: new TrainingSigmas(betaConfig),
    numTrainTimesteps: betaConfig.numTrainTimesteps,
    betaSchedule: betaConfig.betaSchedule,
    solverOrder,
    lowerOrderFinal,
    useKarrasSigmas,
    lambdaMinClipped,
    spacing,
    stepsOffset,
    solver: {
      algorithm,
      solverType,
      predictionType,
      finalSigmasType,
      thresholding: readBoolean(config, "thresholding", false),
      dynamicThresholdingRatio: readNumber(config, "dynamic_thresholding_ratio", 0.995),
      sampleMaxValue: readNumber(config, "sample_max_value", 1.0),
      batchSize,
    },
  };
}
