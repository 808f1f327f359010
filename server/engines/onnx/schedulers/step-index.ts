/**
 * diffusers' step-index bookkeeping for schedulers whose timesteps may repeat: the index is found
 * from the first timestep seen (or taken from set_begin_index) and then advanced by each step.
 */
import { indexForTimestep } from "./noise-schedule.ts";

export class StepIndex {
  private stepIndex: number | null = null;
  private beginIndex: number | null = null;

  /** `missingIsLast`: DPM-Solver's lookup, where an unknown timestep means the last step. */
  constructor(private readonly missingIsLast = false) {}

  private lookup(timesteps: Float64Array, timestep: number): number {
    if (this.missingIsLast && !timesteps.includes(timestep)) return timesteps.length - 1;
    return indexForTimestep(timesteps, timestep);
  }

  reset(): void {
    this.stepIndex = null;
    this.beginIndex = null;
  }

  setBegin(beginIndex: number): void {
    this.beginIndex = beginIndex;
  }

  /** The current index, initialising it from `timestep` on first use. */
  current(timesteps: Float64Array, timestep: number): number {
    if (this.stepIndex === null) {
      this.stepIndex = this.beginIndex ?? this.lookup(timesteps, timestep);
    }
    return this.stepIndex;
  }

  advance(): void {
    if (this.stepIndex === null) throw new Error("step index advanced before it was set");
    this.stepIndex++;
  }

  /** The index add_noise uses: begin index before the loop, current index within it. */
  forNoise(timesteps: Float64Array, timestep: number): number {
    if (this.beginIndex === null) return this.lookup(timesteps, timestep);
    return this.stepIndex ?? this.beginIndex;
  }
}
