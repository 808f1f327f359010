/**
 * The eleven schedulers against diffusers' own full-loop goldens (tests/schedulers/test_scheduler_*.py,
 * CPU values, same configs and tolerances), plus the factory and SD 1.5 timesteps.
 */
import { describe, expect, it } from "vitest";
import { TorchGenerator } from "../server/engines/onnx/torch-generator.ts";
import { createScheduler, SCHEDULER_NAMES, SEGMIND_SCHEDULER_NAMES, type SchedulerName } from "../server/engines/onnx/schedulers/index.ts";
import { DDIMScheduler } from "../server/engines/onnx/schedulers/ddim.ts";
import { DPMSolverSinglestepScheduler } from "../server/engines/onnx/schedulers/dpm-solver-singlestep.ts";
import { HeunDiscreteScheduler } from "../server/engines/onnx/schedulers/heun.ts";
import { KDPM2DiscreteScheduler } from "../server/engines/onnx/schedulers/kdpm2.ts";
import { KDPM2AncestralDiscreteScheduler } from "../server/engines/onnx/schedulers/kdpm2-ancestral.ts";
import { DPMSolverMultistepScheduler } from "../server/engines/onnx/schedulers/dpm-solver-multistep.ts";
import { DDPMScheduler } from "../server/engines/onnx/schedulers/ddpm.ts";
import { PNDMScheduler } from "../server/engines/onnx/schedulers/pndm.ts";
import { EulerDiscreteScheduler } from "../server/engines/onnx/schedulers/euler.ts";
import { EulerAncestralDiscreteScheduler } from "../server/engines/onnx/schedulers/euler-ancestral.ts";
import { LMSDiscreteScheduler } from "../server/engines/onnx/schedulers/lms.ts";


import type { NoiseSource, Scheduler } from "../server/engines/onnx/schedulers/scheduler.ts";
import { timestepsForStrength } from "../server/engines/onnx/schedulers/scheduler.ts";

const f32 = Math.fround;

/** tests/schedulers/test_schedulers.py: arange(768) as (3, 8, 8, 4) / 768, permuted to (4, 3, 8, 8). */
function deterministicTensor(reversed: boolean): Float32Array {
  const out = new Float32Array(768);
  for (let b = 0; b < 4; b++)
    for (let c = 0; c < 3; c++)
      for (let h = 0; h < 8; h++)
        for (let w = 0; w < 8; w++) {
          const source = ((c * 8 + h) * 8 + w) * 4 + b;
          out[((b * 3 + c) * 8 + h) * 8 + w] = f32((reversed ? 767 - source : source) / 768);
        }
  return out;
}
const dummySampleDeter = (): Float32Array => deterministicTensor(false);
const dummyNoiseDeter = (): Float32Array => deterministicTensor(true);

/** dummy_model(sample, t) = sample * t / (t + 1), in float32 like the torch tensors. */
function dummyModel(sample: Float32Array, t: number): Float32Array {
  const denominator = f32(t + 1);
  return sample.map((x) => f32(f32(x * t) / denominator));
}

function scaled(sample: Float32Array, factor: number): Float32Array {
  return sample.map((x) => f32(x * factor));
}

function absSum(sample: Float32Array): number {
  let sum = 0;
  for (const x of sample) sum += Math.abs(x);
  return sum;
}

interface Golden {
  sum?: number;
  sumTolerance?: number;
  mean: number;
  meanTolerance: number;
}

function expectGolden(sample: Float32Array, golden: Golden): void {
  const sum = absSum(sample);
  const mean = sum / sample.length;
  if (golden.sum !== undefined) expect(Math.abs(sum - golden.sum), `sum ${sum} vs ${golden.sum}`).toBeLessThan(golden.sumTolerance ?? 1e-2);
  expect(Math.abs(mean - golden.mean), `mean ${mean} vs ${golden.mean}`).toBeLessThan(golden.meanTolerance);
}

/** The loop of the DDIM/DPM/PNDM tests: no input scaling, sample starts at dummy_sample_deter. */
function plainLoop(scheduler: Scheduler, steps: number): Float32Array {
  scheduler.setTimesteps(steps);
  let sample = dummySampleDeter();
  for (const t of scheduler.timesteps) sample = scheduler.step(dummyModel(sample, t), t, sample);
  return sample;
}

/**
 * The loop of the k-diffusion tests (Euler, LMS, Heun, DPM2): the sample is replaced by its scaled
 * version each step, exactly as those tests do.
 */
function scaledLoop(scheduler: Scheduler, steps: number, noise?: NoiseSource): Float32Array {
  scheduler.setTimesteps(steps);
  let sample = scaled(dummySampleDeter(), scheduler.initNoiseSigma);
  for (const t of scheduler.timesteps) {
    sample = scheduler.scaleModelInput(sample, t);
    sample = scheduler.step(dummyModel(sample, t), t, sample, noise);
  }
  return sample;
}

/** The `test_full_loop_with_noise` loops: start at t_start * order, noised with dummy_noise_deter. */
function noisedLoop(scheduler: Scheduler, steps: number, tStart: number, options: { scaleInput: boolean; initSigma: boolean; noise?: NoiseSource }): Float32Array {
  scheduler.setTimesteps(steps);
  let sample = options.initSigma ? scaled(dummySampleDeter(), scheduler.initNoiseSigma) : dummySampleDeter();
  const timesteps = scheduler.timesteps.slice(tStart * scheduler.order);
  sample = scheduler.addNoise(sample, dummyNoiseDeter(), timesteps[0]);
  for (const t of timesteps) {
    if (options.scaleInput) sample = scheduler.scaleModelInput(sample, t);
    sample = scheduler.step(dummyModel(sample, t), t, sample, options.noise);
  }
  return sample;
}

const seed0 = (): TorchGenerator => new TorchGenerator(0);

describe("DDIM (test_scheduler_ddim.py)", () => {
  const config = (extra: Record<string, unknown> = {}) => ({
    num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear", clip_sample: true, ...extra,
  });
  it("steps_offset 1 gives [801, 601, 401, 201, 1] for 5 steps", () => {
    const s = new DDIMScheduler(config({ steps_offset: 1 }));
    s.setTimesteps(5);
    expect(Array.from(s.timesteps)).toEqual([801, 601, 401, 201, 1]);
  });
  it("full loop, no noise", () => expectGolden(plainLoop(new DDIMScheduler(config()), 10), { sum: 172.0067, mean: 0.223967, meanTolerance: 1e-3 }));
  it("full loop, v_prediction", () => expectGolden(plainLoop(new DDIMScheduler(config({ prediction_type: "v_prediction" })), 10), { sum: 52.5302, mean: 0.0684, meanTolerance: 1e-3 }));
  it("full loop, set_alpha_to_one", () => expectGolden(plainLoop(new DDIMScheduler(config({ set_alpha_to_one: true, beta_start: 0.01 })), 10), { sum: 149.8295, mean: 0.1951, meanTolerance: 1e-3 }));
  it("full loop, no set_alpha_to_one", () => expectGolden(plainLoop(new DDIMScheduler(config({ set_alpha_to_one: false, beta_start: 0.01 })), 10), { sum: 149.0784, mean: 0.1941, meanTolerance: 1e-3 }));
  it("full loop with noise from t_start 8", () => expectGolden(noisedLoop(new DDIMScheduler(config()), 10, 8, { scaleInput: false, initSigma: false }), { sum: 354.5418, mean: 0.4616, meanTolerance: 1e-3 }));
});

const kConfig = (extra: Record<string, unknown> = {}) => ({
  num_train_timesteps: 1100, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear", ...extra,
});

describe("Euler (test_scheduler_euler.py)", () => {
  it("full loop, no noise", () => expectGolden(scaledLoop(new EulerDiscreteScheduler(kConfig()), 10), { sum: 10.0807, mean: 0.0131, meanTolerance: 1e-3 }));
  it("full loop, v_prediction", () => expectGolden(scaledLoop(new EulerDiscreteScheduler(kConfig({ prediction_type: "v_prediction" })), 10), { sum: 0.0002, mean: 2.2676e-6, meanTolerance: 1e-3 }));
  it("full loop, Karras sigmas", () => expectGolden(scaledLoop(new EulerDiscreteScheduler(kConfig({ use_karras_sigmas: true })), 10), { sum: 124.52299499511719, mean: 0.16213932633399963, meanTolerance: 1e-3 }));
});

describe("Euler a (test_scheduler_euler_ancestral.py, torch.manual_seed(0))", () => {
  it("full loop, no noise", () => expectGolden(scaledLoop(new EulerAncestralDiscreteScheduler(kConfig()), 10, seed0()), { sum: 152.3192, mean: 0.1983, meanTolerance: 1e-3 }));
  it("full loop, v_prediction", () => expectGolden(scaledLoop(new EulerAncestralDiscreteScheduler(kConfig({ prediction_type: "v_prediction" })), 10, seed0()), { sum: 108.4439, mean: 0.1412, meanTolerance: 1e-3 }));
  it("full loop with noise from t_start 8", () => expectGolden(noisedLoop(new EulerAncestralDiscreteScheduler(kConfig()), 10, 8, { scaleInput: true, initSigma: true, noise: seed0() }), { sum: 56163.0508, mean: 73.129, meanTolerance: 1e-3 }));
});

describe("LMS (test_scheduler_lms.py)", () => {
  it("full loop, no noise", () => expectGolden(scaledLoop(new LMSDiscreteScheduler(kConfig()), 10), { sum: 1006.388, mean: 1.31, meanTolerance: 1e-3 }));
  it("full loop, v_prediction", () => expectGolden(scaledLoop(new LMSDiscreteScheduler(kConfig({ prediction_type: "v_prediction" })), 10), { sum: 0.0017, mean: 2.2676e-6, meanTolerance: 1e-3 }));
  it("full loop, Karras sigmas", () => expectGolden(scaledLoop(new LMSDiscreteScheduler(kConfig({ use_karras_sigmas: true })), 10), { sum: 3812.9927, mean: 4.9648, meanTolerance: 1e-3 }));
});

describe("PNDM (test_scheduler_pndm.py)", () => {
  const config = (extra: Record<string, unknown> = {}) => ({
    num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear", ...extra,
  });
  function fullLoop(extra: Record<string, unknown> = {}): Float32Array {
    const scheduler = new PNDMScheduler(config(extra));
    scheduler.setTimesteps(10);
    let sample = dummySampleDeter();
    for (const t of scheduler.prkTimesteps) sample = scheduler.stepPrk(dummyModel(sample, t), t, sample);
    for (const t of scheduler.plmsTimesteps) sample = scheduler.stepPlms(dummyModel(sample, t), t, sample);
    return sample;
  }
  it("steps_offset 1 timesteps for 10 steps", () => {
    const s = new PNDMScheduler(config({ steps_offset: 1 }));
    s.setTimesteps(10);
    expect(Array.from(s.timesteps)).toEqual([901, 851, 851, 801, 801, 751, 751, 701, 701, 651, 651, 601, 601, 501, 401, 301, 201, 101, 1]);
  });
  it("full loop, no noise", () => expectGolden(fullLoop(), { sum: 198.1318, mean: 0.258, meanTolerance: 1e-3 }));
  it("full loop, v_prediction", () => expectGolden(fullLoop({ prediction_type: "v_prediction" }), { sum: 67.3986, mean: 0.0878, meanTolerance: 1e-3 }));
  it("full loop, set_alpha_to_one", () => expectGolden(fullLoop({ set_alpha_to_one: true, beta_start: 0.01 }), { sum: 230.0399, mean: 0.2995, meanTolerance: 1e-3 }));
  it("full loop, no set_alpha_to_one", () => expectGolden(fullLoop({ set_alpha_to_one: false, beta_start: 0.01 }), { sum: 186.9482, mean: 0.2434, meanTolerance: 1e-3 }));
  it("the generic step() follows the same PRK then PLMS path", () => {
    const viaStep = plainLoop(new PNDMScheduler(config()), 10);
    expect(Array.from(viaStep)).toEqual(Array.from(fullLoop()));
  });
});

describe("DDPM (test_scheduler_ddpm.py, torch.manual_seed(0))", () => {
  const config = (extra: Record<string, unknown> = {}) => ({
    num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear", variance_type: "fixed_small", clip_sample: true, ...extra,
  });
  function trainingLoop(scheduler: DDPMScheduler): Float32Array {
    const generator = seed0();
    let sample = dummySampleDeter();
    for (let t = 999; t >= 0; t--) sample = scheduler.step(dummyModel(sample, t), t, sample, generator);
    return sample;
  }
  it("variance matches test_variance", () => {
    const s = new DDPMScheduler(config());
    expect(Math.abs(s.variance(0))).toBeLessThan(1e-5);
    expect(Math.abs(s.variance(487) - 0.00979)).toBeLessThan(1e-5);
    expect(Math.abs(s.variance(999) - 0.02)).toBeLessThan(1e-5);
  });
  it("full loop, no noise", () => expectGolden(trainingLoop(new DDPMScheduler(config())), { sum: 258.9606, mean: 0.3372, meanTolerance: 1e-3 }));
  it("full loop, v_prediction", () => expectGolden(trainingLoop(new DDPMScheduler(config({ prediction_type: "v_prediction" }))), { sum: 202.0296, mean: 0.2631, meanTolerance: 1e-3 }));
  it("full loop with noise from t_start 998", () => {
    const scheduler = new DDPMScheduler(config());
    const generator = seed0();
    const timesteps = scheduler.timesteps.slice(998);
    let sample = scheduler.addNoise(dummySampleDeter(), dummyNoiseDeter(), timesteps[0]);
    for (const t of timesteps) sample = scheduler.step(dummyModel(sample, t), t, sample, generator);
    expectGolden(sample, { sum: 387.9466, mean: 0.5051, meanTolerance: 1e-3 });
  });
});

describe("DPM Multi (test_scheduler_dpm_multi.py)", () => {
  const config = (extra: Record<string, unknown> = {}) => ({
    num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear", solver_order: 2,
    prediction_type: "epsilon", thresholding: false, sample_max_value: 1.0, algorithm_type: "dpmsolver++",
    solver_type: "midpoint", lower_order_final: false, euler_at_final: false, lambda_min_clipped: -Infinity, variance_type: null, final_sigmas_type: "sigma_min", ...extra,
  });
  it("full loop, no noise", () => expectGolden(plainLoop(new DPMSolverMultistepScheduler(config()), 10), { mean: 0.3301, meanTolerance: 1e-3 }));
  it("full loop, dynamic thresholding", () =>
    expectGolden(plainLoop(new DPMSolverMultistepScheduler(config({ thresholding: true, dynamic_thresholding_ratio: 0.87, sample_max_value: 0.5 }), { batchSize: 4 }), 10), { mean: 1.1364, meanTolerance: 1e-3 }));
  it("full loop, v_prediction", () => expectGolden(plainLoop(new DPMSolverMultistepScheduler(config({ prediction_type: "v_prediction" })), 10), { mean: 0.2251, meanTolerance: 1e-3 }));
  it("no NaN for every order, solver type and algorithm", () => {
    for (const algorithm_type of ["dpmsolver", "dpmsolver++"])
      for (const solver_type of ["midpoint", "heun"])
        for (const solver_order of [1, 2, 3])
          for (const prediction_type of ["epsilon", "sample"]) {
            const extra = { algorithm_type, solver_type, solver_order, prediction_type, final_sigmas_type: algorithm_type === "dpmsolver" ? "sigma_min" : "zero" };
            const sample = plainLoop(new DPMSolverMultistepScheduler(config(extra)), 10);
            expect(sample.some(Number.isNaN), JSON.stringify(extra)).toBe(false);
          }
  });
});

describe("Heun (test_scheduler_heun.py)", () => {
  it("full loop, no noise", () => expectGolden(scaledLoop(new HeunDiscreteScheduler(kConfig()), 10), { sum: 0.1233, mean: 0.0002, meanTolerance: 1e-3 }));
  it("full loop, v_prediction", () => expectGolden(scaledLoop(new HeunDiscreteScheduler(kConfig({ prediction_type: "v_prediction" })), 10), { sum: 4.6934e-7, mean: 6.1112e-10, meanTolerance: 1e-3 }));
  it("full loop, Karras sigmas", () => expectGolden(scaledLoop(new HeunDiscreteScheduler(kConfig({ use_karras_sigmas: true })), 10), { sum: 0.00015, mean: 1.9869554535034695e-7, meanTolerance: 1e-2 }));
});

describe("DPM2 (test_scheduler_kdpm2_discrete.py)", () => {
  it("full loop, v_prediction", () => expectGolden(scaledLoop(new KDPM2DiscreteScheduler(kConfig({ prediction_type: "v_prediction" })), 10), { sum: 4.6934e-7, mean: 6.1112e-10, meanTolerance: 1e-3 }));
  it("full loop, no noise", () => expectGolden(scaledLoop(new KDPM2DiscreteScheduler(kConfig()), 10), { sum: 20.4125, mean: 0.0266, meanTolerance: 1e-3 }));
  it("full loop with noise from t_start 8", () => expectGolden(noisedLoop(new KDPM2DiscreteScheduler(kConfig()), 10, 8, { scaleInput: true, initSigma: true }), { sum: 70408.4062, mean: 91.6776, meanTolerance: 1e-3 }));
});

describe("DPM2 a (test_scheduler_kdpm2_ancestral.py, torch.manual_seed(0))", () => {
  it("full loop, no noise", () => expectGolden(scaledLoop(new KDPM2AncestralDiscreteScheduler(kConfig()), 10, seed0()), { sum: 13979.9433, mean: 18.203, meanTolerance: 5e-3 }));
  it("full loop, v_prediction", () => expectGolden(scaledLoop(new KDPM2AncestralDiscreteScheduler(kConfig({ prediction_type: "v_prediction" })), 10, seed0()), { sum: 331.8133, mean: 0.432, meanTolerance: 1e-3 }));
  it("full loop with noise from t_start 8", () => expectGolden(noisedLoop(new KDPM2AncestralDiscreteScheduler(kConfig()), 10, 8, { scaleInput: true, initSigma: true, noise: seed0() }), { sum: 93087.3437, mean: 121.2074, meanTolerance: 5e-3 }));
  it("squaredcos_cap_v2 gives finite timesteps and sigmas", () => {
    const s = new KDPM2AncestralDiscreteScheduler(kConfig({ beta_schedule: "squaredcos_cap_v2" }));
    s.setTimesteps(4);
    expect(s.timesteps.every(Number.isFinite)).toBe(true);
    expect(s.sigmas.every(Number.isFinite)).toBe(true);
  });
});

describe("DPM Single (test_scheduler_dpm_single.py)", () => {
  const config = (extra: Record<string, unknown> = {}) => ({
    num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear", solver_order: 2,
    prediction_type: "epsilon", thresholding: false, sample_max_value: 1.0, algorithm_type: "dpmsolver++",
    solver_type: "midpoint", lambda_min_clipped: -Infinity, variance_type: null, final_sigmas_type: "sigma_min", ...extra,
  });
  it("full loop, no noise", () => expectGolden(plainLoop(new DPMSolverSinglestepScheduler(config()), 10), { mean: 0.2791, meanTolerance: 1e-3 }));
  it("full loop, v_prediction", () => expectGolden(plainLoop(new DPMSolverSinglestepScheduler(config({ prediction_type: "v_prediction" })), 10), { mean: 0.1453, meanTolerance: 1e-3 }));
  it("full uneven loop (50 steps from index 3)", () => {
    const scheduler = new DPMSolverSinglestepScheduler(config());
    scheduler.setTimesteps(50);
    let sample = dummySampleDeter();
    for (const t of scheduler.timesteps.slice(3)) sample = scheduler.step(dummyModel(sample, t), t, sample);
    expectGolden(sample, { mean: 0.2574, meanTolerance: 1e-3 });
  });
  it("no NaN for every order, solver type and algorithm", () => {
    for (const algorithm_type of ["dpmsolver", "dpmsolver++"])
      for (const solver_type of ["midpoint", "heun"])
        for (const solver_order of [1, 2, 3])
          for (const prediction_type of ["epsilon", "sample"]) {
            const extra = { algorithm_type, solver_type, solver_order, prediction_type };
            const sample = plainLoop(new DPMSolverSinglestepScheduler(config(extra)), 10);
            expect(sample.some(Number.isNaN), JSON.stringify(extra)).toBe(false);
          }
  });
});

/** runwayml/stable-diffusion-inpainting's scheduler/scheduler_config.json (the keys that matter). */
const SD15_CONFIG = {
  _class_name: "PNDMScheduler", num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012,
  beta_schedule: "scaled_linear", steps_offset: 1, set_alpha_to_one: false, clip_sample: false,
  skip_prk_steps: true, trained_betas: null,
};

describe("factory", () => {
  it("lists the eleven Segmind names in order, then LCM (local only)", () => {
    expect([...SEGMIND_SCHEDULER_NAMES]).toEqual(["DDIM", "DPM Multi", "DPM Single", "Euler a", "Euler", "Heun", "DPM2 a Karras", "DPM2 Karras", "LMS", "PNDM", "DDPM"]);
    expect([...SCHEDULER_NAMES]).toEqual([...SEGMIND_SCHEDULER_NAMES, "LCM"]);
  });
  it("rejects an unknown name, listing the allowed ones", () => {
    expect(() => createScheduler("Euler b", SD15_CONFIG)).toThrow(/unknown scheduler "Euler b".*DDIM, DPM Multi, DPM Single, Euler a, Euler, Heun, DPM2 a Karras, DPM2 Karras, LMS, PNDM, DDPM, LCM/);
  });
  it("rejects a config value of the wrong type", () => {
    expect(() => createScheduler("DDIM", { ...SD15_CONFIG, steps_offset: "1" })).toThrow(/steps_offset must be a number/);
  });
  it.each(SCHEDULER_NAMES.map((name) => [name]))("%s runs 20 SD 1.5 steps to a finite sample", (name: SchedulerName) => {
    const scheduler = createScheduler(name, SD15_CONFIG);
    scheduler.setTimesteps(20);
    expect(scheduler.timesteps.length).toBe(name === "PNDM" ? 21 : scheduler.order === 2 ? 39 : 20);
    const generator = seed0();
    let sample = scaled(dummySampleDeter(), scheduler.initNoiseSigma);
    for (const t of scheduler.timesteps) {
      const input = scheduler.scaleModelInput(sample, t);
      sample = scheduler.step(dummyModel(input, t).map((x) => f32(x * 0.1)), t, sample, generator);
    }
    expect(sample.every(Number.isFinite)).toBe(true);
  });
  it("the stochastic schedulers demand a noise source", () => {
    for (const name of ["Euler a", "DPM2 a Karras", "DDPM"] as const) {
      const scheduler = createScheduler(name, SD15_CONFIG);
      scheduler.setTimesteps(20);
      const sample = dummySampleDeter();
      const run = () => {
        for (const t of scheduler.timesteps.slice(0, 2)) scheduler.step(dummyModel(sample, t), t, scheduler.scaleModelInput(sample, t));
      };
      expect(run, name).toThrow(/NoiseSource/);
    }
  });
});

describe("SD 1.5 timesteps for 20 steps (derived from each class's set_timesteps)", () => {
  const timesteps = (name: SchedulerName) => {
    const s = createScheduler(name, SD15_CONFIG);
    s.setTimesteps(20);
    return Array.from(s.timesteps);
  };
  // "leading": (arange(20) * (1000 // 20))[::-1] + steps_offset
  const leading = Array.from({ length: 20 }, (_, i) => 951 - 50 * i);
  it("DDIM and DDPM: leading spacing plus steps_offset", () => {
    expect(timesteps("DDIM")).toEqual(leading);
    expect(timesteps("DDPM")).toEqual(leading);
  });
  it("PNDM (skip_prk_steps): PLMS repeats the second timestep", () => {
    expect(timesteps("PNDM")).toEqual([951, 901, ...leading.slice(1)]);
  });
  it("Euler, Euler a, LMS: linspace(0, 999, 20)[::-1] as float32", () => {
    const expected = Array.from({ length: 20 }, (_, i) => (i === 0 ? 999 : i === 19 ? 0 : f32((19 - i) * (999 / 19))));
    expect(timesteps("Euler")).toEqual(expected);
    expect(timesteps("Euler a")).toEqual(expected);
    expect(timesteps("LMS")).toEqual(expected);
    expect(timesteps("Euler")[1]).toBeCloseTo(946.4210526, 4);
  });
  it("DPM Multi and DPM Single: linspace(0, 999, 21).round()[::-1][:-1]", () => {
    const expected = [999, 949, 899, 849, 799, 749, 699, 649, 599, 549, 500, 450, 400, 350, 300, 250, 200, 150, 100, 50];
    expect(timesteps("DPM Multi")).toEqual(expected);
    expect(timesteps("DPM Single")).toEqual(expected);
  });
  it("Heun repeats every timestep after the first", () => {
    const heun = timesteps("Heun");
    expect(heun.length).toBe(39);
    expect(heun[0]).toBe(999);
    expect(heun[1]).toBe(heun[2]);
    expect(heun[38]).toBe(0);
  });
  it("DPM2 Karras interleaves Karras timesteps (rounded) with interpolated ones", () => {
    const dpm2 = timesteps("DPM2 Karras");
    expect(dpm2.length).toBe(39);
    for (let i = 0; i < 39; i += 2) expect(Number.isInteger(dpm2[i])).toBe(true);
    for (let i = 1; i < 39; i++) expect(dpm2[i]).toBeLessThan(dpm2[i - 1]);
  });
});

describe("timestepsForStrength (diffusers' get_timesteps)", () => {
  it("skips the first (1 - strength) share of the steps and sets the begin index", () => {
    const ddim = createScheduler("DDIM", SD15_CONFIG);
    ddim.setTimesteps(20);
    const { timesteps, beginIndex, numInferenceSteps } = timestepsForStrength(ddim, 20, 0.5);
    expect(beginIndex).toBe(10);
    expect(numInferenceSteps).toBe(10);
    expect(Array.from(timesteps)).toEqual([451, 401, 351, 301, 251, 201, 151, 101, 51, 1]);
  });
  it("counts model calls for second-order schedulers and noises at sigmas[begin_index]", () => {
    const heun = new HeunDiscreteScheduler(SD15_CONFIG);
    heun.setTimesteps(20);
    const { timesteps, beginIndex } = timestepsForStrength(heun, 20, 0.75);
    expect(beginIndex).toBe(10);
    expect(timesteps.length).toBe(29);
    const original = dummySampleDeter();
    const noise = dummyNoiseDeter();
    const noised = heun.addNoise(original, noise, timesteps[0]);
    const sigma = heun.sigmas[10];
    expect(sigma).toBeGreaterThan(0);
    noised.forEach((x, i) => expect(x).toBe(f32(original[i] + f32(noise[i] * sigma))));
  });
});
