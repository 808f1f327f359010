/**
 * The scheduler names and the factory that builds each from a `scheduler_config.json` object, with the
 * overrides Segmind's names imply (DPM++ 2M, PLMS, Karras sigmas): the eleven of the Segmind API, and LCM
 * for LCM-distilled models, which only the local engine runs.
 */
import { asRawConfig } from "./config.ts";
import { DDIMScheduler } from "./ddim.ts";
import { DDPMScheduler } from "./ddpm.ts";
import { DPMSolverMultistepScheduler } from "./dpm-solver-multistep.ts";
import { DPMSolverSinglestepScheduler } from "./dpm-solver-singlestep.ts";
import { EulerAncestralDiscreteScheduler } from "./euler-ancestral.ts";
import { EulerDiscreteScheduler } from "./euler.ts";
import { HeunDiscreteScheduler } from "./heun.ts";
import { KDPM2AncestralDiscreteScheduler } from "./kdpm2-ancestral.ts";
import { KDPM2DiscreteScheduler } from "./kdpm2.ts";
import { LCMScheduler } from "./lcm.ts";
import { LMSDiscreteScheduler } from "./lms.ts";
import { PNDMScheduler } from "./pndm.ts";
import type { Scheduler } from "./scheduler.ts";

export type { NoiseSource, Scheduler } from "./scheduler.ts";
export { timestepsForStrength } from "./scheduler.ts";

/** The schedulers Segmind's API accepts, in its documentation's order. */
export const SEGMIND_SCHEDULER_NAMES = [
  "DDIM",
  "DPM Multi",
  "DPM Single",
  "Euler a",
  "Euler",
  "Heun",
  "DPM2 a Karras",
  "DPM2 Karras",
  "LMS",
  "PNDM",
  "DDPM",
] as const;

export const SCHEDULER_NAMES = [...SEGMIND_SCHEDULER_NAMES, "LCM"] as const;

export type SchedulerName = (typeof SCHEDULER_NAMES)[number];

export function isSchedulerName(name: string): name is SchedulerName {
  return (SCHEDULER_NAMES as readonly string[]).includes(name);
}

/**
 * Build the scheduler Segmind calls `name` from a model's scheduler config (diffusers'
 * `Class.from_config(pipe.scheduler.config, **overrides)`): keys meant for another class are ignored
 * by each class, as diffusers ignores them.
 */
export function createScheduler(name: string, config: object): Scheduler {
  const base = asRawConfig(config);
  switch (name) {
    case "DDIM":
      return new DDIMScheduler(base);
    case "DPM Multi":
      return new DPMSolverMultistepScheduler({ ...base, algorithm_type: "dpmsolver++", solver_order: 2 });
    case "DPM Single":
      return new DPMSolverSinglestepScheduler(base);
    case "Euler a":
      return new EulerAncestralDiscreteScheduler(base);
    case "Euler":
      return new EulerDiscreteScheduler(base);
    case "Heun":
      return new HeunDiscreteScheduler(base);
    case "DPM2 a Karras":
      return new KDPM2AncestralDiscreteScheduler({ ...base, use_karras_sigmas: true });
    case "DPM2 Karras":
      return new KDPM2DiscreteScheduler({ ...base, use_karras_sigmas: true });
    case "LMS":
      return new LMSDiscreteScheduler(base);
    case "PNDM":
      return new PNDMScheduler({ ...base, skip_prk_steps: true });
    case "DDPM":
      return new DDPMScheduler(base);
    case "LCM":
      return new LCMScheduler(base);
    default:
      throw new Error(`unknown scheduler ${JSON.stringify(name)}; expected one of: ${SCHEDULER_NAMES.join(", ")}`);
  }
}
