/**
 * The contract every diffusion scheduler honours, modelled on diffusers' SchedulerMixin.
 *
 * Tensors are flat Float32Arrays in NCHW order with the batch included. The maths is
 * element-wise, so shapes do not matter, except that noise must be drawn in the order torch
 * draws it: one randn of the full sample shape per draw.
 */

/** Source of standard-normal noise; a torch-compatible generator supplies the same values as torch. */
export interface NoiseSource {
  randn(count: number): Float32Array;
}

export interface Scheduler {
  /** Timesteps in the order the pipeline visits them (valid after setTimesteps). */
  readonly timesteps: Float64Array;
  /** Standard deviation of the initial noise (latents = noise * initNoiseSigma at strength 1). */
  readonly initNoiseSigma: number;
  /** Model evaluations per inference step: 2 for Heun / DPM2 (their timesteps repeat, as in diffusers). */
  readonly order: number;
  setTimesteps(numInferenceSteps: number): void;
  /**
   * Where the denoising loop starts in `timesteps` (diffusers' set_begin_index). Schedulers that
   * index their state by timestep value rather than position ignore it, as diffusers does.
   */
  setBeginIndex(beginIndex: number): void;
  scaleModelInput(sample: Float32Array, timestep: number): Float32Array;
  /** One denoising step; returns prev_sample. `noise` is required by the stochastic schedulers. */
  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: NoiseSource): Float32Array;
  /** Forward diffusion of `original` to the noise level of `timestep`. */
  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array;
}

/**
 * diffusers' inpaint/img2img `get_timesteps`: with strength < 1 the first (1 - strength) share of the
 * steps is skipped. Sets the scheduler's begin index and returns the timesteps still to run.
 */
export function timestepsForStrength(
  scheduler: Scheduler,
  numInferenceSteps: number,
  strength: number,
): { timesteps: Float64Array; beginIndex: number; numInferenceSteps: number } {
  const initTimestep = Math.min(Math.trunc(numInferenceSteps * strength), numInferenceSteps);
  const tStart = Math.max(numInferenceSteps - initTimestep, 0);
  const beginIndex = tStart * scheduler.order;
  scheduler.setBeginIndex(beginIndex);
  return {
    timesteps: scheduler.timesteps.slice(beginIndex),
    beginIndex,
    numInferenceSteps: numInferenceSteps - tStart,
  };
}

export function requireNoise(noise: NoiseSource | undefined, schedulerName: string): NoiseSource {
  if (noise === undefined) {
    throw new Error(`${schedulerName}.step draws noise: pass a NoiseSource (a seeded TorchGenerator)`);
  }
  return noise;
}
