/**
 * Reading `scheduler_config.json`. Each scheduler class declares its own defaults (as its diffusers
 * counterpart does) and asks this module for typed values, so a key the file omits takes that
 * class's default, and a key of the wrong type is an error rather than a silent default.
 */

export type BetaSchedule = "linear" | "scaled_linear" | "squaredcos_cap_v2";
export type PredictionType = "epsilon" | "v_prediction" | "sample";
export type TimestepSpacing = "leading" | "trailing" | "linspace";

/** The keys shared by every scheduler: how the training noise schedule was built. */
export interface BetaConfig {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: BetaSchedule;
  trainedBetas: number[] | null;
}

export type RawConfig = Readonly<Record<string, unknown>>;

export function asRawConfig(config: unknown): RawConfig {
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    throw new Error("scheduler config must be a JSON object");
  }
  return config as RawConfig;
}

export function readNumber(config: RawConfig, key: string, fallback: number): number {
  const value = config[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw new Error(`scheduler config: ${key} must be a number, got ${JSON.stringify(value)}`);
  }
  return value;
}

export function readInteger(config: RawConfig, key: string, fallback: number): number {
  const value = readNumber(config, key, fallback);
  if (!Number.isInteger(value)) throw new Error(`scheduler config: ${key} must be an integer, got ${value}`);
  return value;
}

export function readBoolean(config: RawConfig, key: string, fallback: boolean): boolean {
  const value = config[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "boolean") {
    throw new Error(`scheduler config: ${key} must be a boolean, got ${JSON.stringify(value)}`);
  }
  return value;
}

export function readChoice<T extends string>(
  config: RawConfig,
  key: string,
  allowed: readonly T[],
  fallback: T,
): T {
  const value = config[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw new Error(`scheduler config: ${key} must be one of ${allowed.join(", ")}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/** Throws for each of `keys` the config switches on: options of the diffusers class we do not implement. */
export function rejectUnsupportedFlags(config: RawConfig, className: string, keys: readonly string[]): void {
  for (const key of keys) {
    if (readBoolean(config, key, false)) throw new Error(`${className}: ${key} is not supported`);
  }
}

/**
 * use_karras_sigmas. The diffusers classes that offer it also offer use_exponential_sigmas and
 * use_beta_sigmas, which we do not implement, so those are rejected rather than ignored.
 */
export function readUseKarrasSigmas(config: RawConfig, className: string): boolean {
  const useKarrasSigmas = readBoolean(config, "use_karras_sigmas", false);
  rejectUnsupportedFlags(config, className, ["use_exponential_sigmas", "use_beta_sigmas"]);
  return useKarrasSigmas;
}

const BETA_SCHEDULES: readonly BetaSchedule[] = ["linear", "scaled_linear", "squaredcos_cap_v2"];
export const PREDICTION_TYPES: readonly PredictionType[] = ["epsilon", "v_prediction", "sample"];
export const TIMESTEP_SPACINGS: readonly TimestepSpacing[] = ["leading", "trailing", "linspace"];

/** The beta keys with the defaults most diffusers schedulers use (Heun, DPM2 and LCM override them). */
export function readBetaConfig(
  config: RawConfig,
  defaults: { betaStart: number; betaEnd: number; betaSchedule?: BetaSchedule } = { betaStart: 0.0001, betaEnd: 0.02 },
): BetaConfig {
  const trained = config["trained_betas"];
  let trainedBetas: number[] | null = null;
  if (trained !== undefined && trained !== null) {
    if (!Array.isArray(trained) || !trained.every((b) => typeof b === "number")) {
      throw new Error("scheduler config: trained_betas must be an array of numbers");
    }
    trainedBetas = trained as number[];
  }
  return {
    numTrainTimesteps: readInteger(config, "num_train_timesteps", 1000),
    betaStart: readNumber(config, "beta_start", defaults.betaStart),
    betaEnd: readNumber(config, "beta_end", defaults.betaEnd),
    betaSchedule: readChoice(config, "beta_schedule", BETA_SCHEDULES, defaults.betaSchedule ?? "linear"),
    trainedBetas,
  };
}
