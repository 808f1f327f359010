/**
 * The config keys the k-diffusion schedulers (Euler, Euler a, LMS, Heun, DPM2, DPM2 a) all read the
 * same way, and the training sigmas they imply. Each class still passes its own defaults and the
 * prediction types it accepts, and reads its other keys itself.
 */
import {
  TIMESTEP_SPACINGS,
  readBetaConfig,
  readChoice,
  readInteger,
  readUseKarrasSigmas,
  type PredictionType,
  type RawConfig,
  type TimestepSpacing,
} from "./config.ts";
import { TrainingSigmas } from "./sigma-schedule.ts";

export interface SigmaSchedulerConfig<P extends PredictionType = PredictionType> {
  training: TrainingSigmas;
  numTrainTimesteps: number;
  predictionType: P;
  spacing: TimestepSpacing;
  stepsOffset: number;
  useKarrasSigmas: boolean;
}

export function readSigmaSchedulerConfig<P extends PredictionType>(
  config: RawConfig,
  className: string,
  options: {
    /** Omitted: readBetaConfig's 0.0001..0.02. */
    betaDefaults?: { betaStart: number; betaEnd: number };
    /** The prediction types the class accepts (diffusers raises for the others). */
    predictionTypes: readonly ("epsilon" | P)[];
    /** Whether the class has use_karras_sigmas; one that has not ignores the key, as diffusers does. */
    karrasSigmas: boolean;
  },
): SigmaSchedulerConfig<"epsilon" | P> {
  const betaConfig = readBetaConfig(config, options.betaDefaults);
  return {
    training: new TrainingSigmas(betaConfig),
    numTrainTimesteps: betaConfig.numTrainTimesteps,
    predictionType: readChoice(config, "prediction_type", options.predictionTypes, "epsilon"),
    spacing: readChoice(config, "timestep_spacing", TIMESTEP_SPACINGS, "linspace"),
    stepsOffset: readInteger(config, "steps_offset", 0),
    useKarrasSigmas: options.karrasSigmas ? readUseKarrasSigmas(config, className) : false,
  };
}
