/**
 * The LCM scheduler against diffusers' own LCMScheduler (test/fixtures/diffusers-parity/lcm-scheduler.json, made by
 * test/parity/lcm_goldens.py): 2 to 25 steps, strength 1, 0.75, 0.6 and 0.5, original_inference_steps 100 and a
 * v-prediction run, every step compared, with the noise it injects between steps from TorchGenerator.
 *
 * Bound: none. LCM's tables are alphas_cumprod (float32, DDIM's) and its c_skip / c_out, which Maskflow computes
 * with torch's float32 operations in torch's order (`0.25 / x` as torch's reciprocal then multiply), and its noise
 * is TorchGenerator's: every value of every step equals diffusers' to the last bit.
 */
import { describe, expect, it } from "vitest";
import { createScheduler } from "../server/engines/onnx/schedulers/index.ts";
import { LCMScheduler } from "../server/engines/onnx/schedulers/lcm.ts";
import { TorchGenerator } from "../server/engines/onnx/torch-generator.ts";
import { parseSegmindRequest } from "../server/engines/segmind/segmind-request.ts";
import { loadSchedulerGoldens, replaySchedulerRun } from "./helpers/parity-goldens.ts";

const goldens = loadSchedulerGoldens("lcm-scheduler.json");

describe("LCM against diffusers' LCMScheduler, step by step", () => {
  it("the goldens cover 2–25 steps, strength below 1 and two other configurations", () => {
    expect(goldens.runs).toHaveLength(12);
    expect(new Set(goldens.runs.map((r) => r.steps))).toEqual(new Set([2, 3, 4, 6, 7, 8, 25]));
    expect(goldens.runs.filter((r) => r.strength < 1)).toHaveLength(4);
  });

  for (const run of goldens.runs) {
    const label = `${run.steps} steps, strength ${run.strength}${run.overrides && Object.keys(run.overrides).length ? ` ${JSON.stringify(run.overrides)}` : ""}`;
    it(label, () => {
      const replay = replaySchedulerRun(goldens, run);
      expect(replay.error).toBeUndefined();
      expect(replay.timesteps.exact).toBe(replay.timesteps.count);
      expect(replay.runTimesteps.exact).toBe(replay.runTimesteps.count);
      expect(replay.steps).toHaveLength(run.trajectory.length);
      expect(replay.start.exact).toBe(replay.start.count);
      for (const step of replay.steps) expect(step.exact).toBe(step.count);
    });
  }
});

/** runwayml/stable-diffusion-inpainting's scheduler_config.json, as an LCM-LoRA-merged export ships it. */
const SD15 = {
  _class_name: "PNDMScheduler", num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012,
  beta_schedule: "scaled_linear", steps_offset: 1, set_alpha_to_one: false, clip_sample: false, skip_prk_steps: true,
};

describe("LCM's schedule and its errors", () => {
  it("4 steps: 999, 759, 499, 259 (every 20th of 1000, indices 0, 12, 25, 37 of 50)", () => {
    const scheduler = createScheduler("LCM", SD15);
    scheduler.setTimesteps(4);
    expect(Array.from(scheduler.timesteps)).toEqual([999, 759, 499, 259]);
  });

  it("its own defaults: an empty config is SD's scaled-linear betas", () => {
    const own = new LCMScheduler({});
    const sd = new LCMScheduler(SD15);
    const x = Float32Array.from({ length: 16 }, (_, i) => i / 8 - 1);
    const noise = Float32Array.from({ length: 16 }, (_, i) => Math.sin(i));
    expect(own.addNoise(x, noise, 499)).toEqual(sd.addNoise(x, noise, 499));
  });

  it("the boundary scalings: c_skip → 1 and c_out → 0 near t = 0, c_out ≈ 1 at large t", () => {
    const lcm = new LCMScheduler(SD15);
    expect(lcm.boundaryScalings(0)).toEqual({ cSkip: 1, cOut: 0 });
    const late = lcm.boundaryScalings(999);
    expect(late.cSkip).toBeLessThan(1e-8);
    expect(late.cOut).toBeCloseTo(1, 6);
  });

  it("the last step returns the x0 estimate and draws nothing", () => {
    const lcm = createScheduler("LCM", SD15);
    lcm.setTimesteps(2);
    const generator = new TorchGenerator(7n);
    const sample = Float32Array.from({ length: 32 }, (_, i) => Math.cos(i));
    const eps = sample.map((v) => v * 0.5);
    lcm.step(eps, lcm.timesteps[0], sample, generator);
    const afterFirst = new TorchGenerator(7n);
    afterFirst.randn(32);
    lcm.step(eps, lcm.timesteps[1], sample, generator);
    // The generator is where one draw of 32 left it: the final step drew nothing.
    expect(generator.randn(4)).toEqual(afterFirst.randn(4));
  });

  it("demands a noise source for its intermediate steps", () => {
    const lcm = createScheduler("LCM", SD15);
    lcm.setTimesteps(4);
    const sample = new Float32Array(16);
    expect(() => lcm.step(sample, lcm.timesteps[0], sample)).toThrow(/LCMScheduler.*NoiseSource/);
  });

  it("refuses more steps than original_inference_steps, naming steps and the limit", () => {
    const lcm = createScheduler("LCM", SD15);
    expect(() => lcm.setTimesteps(51)).toThrow(/^steps: LCM takes 1 to 50 steps .*got 51/);
    expect(() => lcm.setTimesteps(0)).toThrow(/^steps: LCM takes 1 to 50/);
    expect(() => createScheduler("LCM", { ...SD15, original_inference_steps: 2000 })).toThrow(/original_inference_steps must be from 1 to num_train_timesteps \(1000\), got 2000/);
    expect(() => createScheduler("LCM", { ...SD15, thresholding: true })).toThrow(/LCMScheduler: thresholding is not supported/);
    expect(() => createScheduler("LCM", { ...SD15, timestep_scaling: "10" })).toThrow(/timestep_scaling must be a number/);
  });

  it("is the local engine's: a Segmind request naming LCM is refused with Segmind's eleven", () => {
    const parsed = parseSegmindRequest({ image: "https://example.com/a.png", mask: "https://example.com/m.png", prompt: "x", scheduler: "LCM" });
    expect(parsed.ok).toBe(false);
    const problem = !parsed.ok ? parsed.problems.find((p) => p.field === "scheduler") : undefined;
    expect(problem?.message).toMatch(/^scheduler must be one of "DDIM", .*"DDPM"; got "LCM"$/);
  });
});
