/**
 * The eleven schedulers against diffusers' own classes (test/fixtures/diffusers-parity/schedulers.json, made by
 * test/parity/scheduler_goldens.py): 10 and 25 steps, strength 1 and 0.6, one fake denoiser, ancestral noise
 * from TorchGenerator. Every step of every run is compared, not only the last.
 *
 * Stated bounds: the training tables (betas, alphas_cumprod, sigmas) are equal to the last bit, since
 * torchLinspaceF32 fuses the multiply-adds torch's AVX2 build fuses. DDIM, DDPM, PNDM, Euler, Euler a and Heun
 * then equal diffusers bit for bit at every step. DPM-Solver, DPM2 and LMS go through numpy's and torch's
 * float32 log/exp (SIMD approximations within an ulp, not correctly rounded) or scipy's integration, where
 * Maskflow rounds the exact value: DPM2's interpolated timesteps are within 8 ulp and each latent after each
 * step within 1e-6 of the largest golden value (float32's epsilon is 1.2e-7; measured worst 3.5e-7). A wrong
 * coefficient, index or noise draw is off by 1e-3 or more.
 */
import { describe, expect, it } from "vitest";
import { loadSchedulerGoldens, replaySchedulerRun } from "./helpers/parity-goldens.ts";

const goldens = loadSchedulerGoldens();
const DPM2 = new Set(["DPM2 Karras", "DPM2 a Karras"]);
const BIT_FOR_BIT = new Set(["DDIM", "DDPM", "PNDM", "Euler", "Euler a", "Heun"]);

describe("schedulers against diffusers' classes, step by step", () => {
  it("the goldens cover the eleven schedulers at 10 and 25 steps, strength 1 and 0.6", () => {
    expect(new Set(goldens.runs.map((r) => r.name)).size).toBe(11);
    expect(goldens.runs).toHaveLength(44);
  });

  for (const run of goldens.runs) {
    it(`${run.name}, ${run.steps} steps, strength ${run.strength}`, () => {
      const replay = replaySchedulerRun(goldens, run);
      expect(replay.error).toBeUndefined();
      expect(replay.steps).toHaveLength(run.trajectory.length);
      if (DPM2.has(run.name)) {
        expect(replay.timesteps.maxUlp).toBeLessThanOrEqual(8);
      } else {
        expect(replay.timesteps.exact).toBe(replay.timesteps.count);
        expect(replay.runTimesteps.exact).toBe(replay.runTimesteps.count);
      }
      if (replay.sigmas) expect(replay.sigmas.exact).toBe(replay.sigmas.count);
      expect(Math.abs(replay.initNoiseSigma.ours - replay.initNoiseSigma.theirs)).toBeLessThanOrEqual(2e-6 * replay.initNoiseSigma.theirs);
      expect(replay.start.relative).toBeLessThanOrEqual(2e-7);
      const worst = Math.max(...replay.steps.map((s) => s.relative));
      expect(worst).toBeLessThanOrEqual(1e-6);
      if (BIT_FOR_BIT.has(run.name)) {
        expect(replay.start.exact).toBe(replay.start.count);
        for (const step of replay.steps) expect(step.exact).toBe(step.count);
      }
    });
  }
});
