/**
 * PNDMScheduler (Liu et al. 2022, pseudo numerical methods), after diffusers' scheduling_pndm.py:
 * Runge-Kutta warm-up steps (unless skip_prk_steps, as in Stable Diffusion) then linear multistep.
 */
import {
  TIMESTEP_SPACINGS,
  asRawConfig,
  readBetaConfig,
  readBoolean,
  readChoice,
  readInteger,
  type TimestepSpacing,
} from "./config.ts";
import { AlphaSchedule } from "./alpha-schedule.ts";
import { npArangeDown, npLinspace, roundHalfEven } from "./noise-schedule.ts";
import type { NoiseSource, Scheduler } from "./scheduler.ts";

const f32 = Math.fround;
const PNDM_ORDER = 4;

export class PNDMScheduler implements Scheduler {
  readonly order = 1;
  readonly initNoiseSigma = 1.0;
  timesteps: Float64Array = new Float64Array(0);
  prkTimesteps: Float64Array = new Float64Array(0);
  plmsTimesteps: Float64Array = new Float64Array(0);
  private readonly schedule: AlphaSchedule;
  private readonly numTrainTimesteps: number;
  private readonly skipPrkSteps: boolean;
  private readonly finalAlphaCumprod: number;
  private readonly predictionType: "epsilon" | "v_prediction";
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;
  private numInferenceSteps: number | null = null;
  private ets: Float32Array[] = [];
  private counter = 0;
  private curModelOutput: Float32Array | null = null;
  private curSample: Float32Array | null = null;

  constructor(rawConfig: unknown) {
    const config = asRawConfig(rawConfig);
    const betaConfig = readBetaConfig(config);
    this.numTrainTimesteps = betaConfig.numTrainTimesteps;
    this.schedule = new AlphaSchedule(betaConfig);
    this.skipPrkSteps = readBoolean(config, "skip_prk_steps", false);
    this.finalAlphaCumprod = readBoolean(config, "set_alpha_to_one", false) ? 1.0 : this.schedule.alphasCumprod[0];
    this.predictionType = readChoice(config, "prediction_type", ["epsilon", "v_prediction"], "epsilon");
    this.spacing = readChoice(config, "timestep_spacing", TIMESTEP_SPACINGS, "leading");
    this.stepsOffset = readInteger(config, "steps_offset", 0);
  }

  setTimesteps(numInferenceSteps: number): void {
    if (!Number.isInteger(numInferenceSteps) || numInferenceSteps < 1) {
      throw new Error(`num_inference_steps must be a positive integer, got ${numInferenceSteps}`);
    }
    if (!this.skipPrkSteps && numInferenceSteps < PNDM_ORDER) {
      throw new Error(`\`num_inference_steps\` must be >= ${PNDM_ORDER} when skip_prk_steps is false`);
    }
    this.numInferenceSteps = numInferenceSteps;
    const T = this.numTrainTimesteps;
    // diffusers' _timesteps: ascending.
    let ascending: number[];
    if (this.spacing === "linspace") {
      ascending = Array.from(npLinspace(0, T - 1, numInferenceSteps), roundHalfEven);
    } else if (this.spacing === "leading") {
      const ratio = Math.floor(T / numInferenceSteps);
      ascending = Array.from({ length: numInferenceSteps }, (_, i) => i * ratio + this.stepsOffset);
    } else {
      ascending = npArangeDown(T, T / numInferenceSteps).map((v) => roundHalfEven(v) - 1).reverse();
    }
    if (this.skipPrkSteps) {
      const plms = [...ascending.slice(0, -1), ascending[ascending.length - 2], ascending[ascending.length - 1]];
      this.prkTimesteps = new Float64Array(0);
      this.plmsTimesteps = Float64Array.from(plms.filter((t) => t !== undefined).reverse());
    } else {
      const half = Math.floor(Math.floor(T / numInferenceSteps) / 2);
      const lastFour = ascending.slice(-PNDM_ORDER);
      const prk: number[] = [];
      for (const t of lastFour) prk.push(t, t + half);
      // prk_timesteps[:-1].repeat(2)[1:-1], reversed
      const repeated = prk.slice(0, -1).flatMap((t) => [t, t]).slice(1, -1);
      this.prkTimesteps = Float64Array.from(repeated.reverse());
      this.plmsTimesteps = Float64Array.from(ascending.slice(0, -3).reverse());
    }
    this.timesteps = new Float64Array([...this.prkTimesteps, ...this.plmsTimesteps]);
    this.ets = [];
    this.counter = 0;
    this.curModelOutput = null;
    this.curSample = null;
  }

  setBeginIndex(): void {
    // PNDM finds its alphas from the timestep value itself.
  }

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, _noise?: NoiseSource): Float32Array {
    if (this.counter < this.prkTimesteps.length && !this.skipPrkSteps) return this.stepPrk(modelOutput, timestep, sample);
    return this.stepPlms(modelOutput, timestep, sample);
  }

  /** Fourth-order Runge-Kutta over four model calls per step. */
  stepPrk(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    if (this.numInferenceSteps === null) throw new Error("call setTimesteps before step");
    const diffToPrev = this.counter % 2 ? 0 : Math.floor(Math.floor(this.numTrainTimesteps / this.numInferenceSteps) / 2);
    const prevTimestep = timestep - diffToPrev;
    const stageTimestep = this.prkTimesteps[Math.floor(this.counter / 4) * 4];
    const weigh = (weight: number): void => {
      const w = f32(weight);
      const acc = this.curModelOutput;
      this.curModelOutput = modelOutput.map((m, i) => (acc === null ? f32(w * m) : f32(acc[i] + f32(w * m))));
    };
    let output = modelOutput;
    const stage = this.counter % 4;
    if (stage === 0) {
      weigh(1 / 6);
      this.ets.push(modelOutput);
      this.curSample = sample;
    } else if (stage === 1 || stage === 2) {
      weigh(1 / 3);
    } else {
      const acc = this.curModelOutput;
      const w = f32(1 / 6);
      output = modelOutput.map((m, i) => (acc === null ? f32(w * m) : f32(acc[i] + f32(w * m))));
      this.curModelOutput = null;
    }
    const prev = this.prevSample(this.curSample ?? sample, stageTimestep, prevTimestep, output);
    this.counter++;
    return prev;
  }

  /** Linear multistep (Adams-Bashforth) over the stored model outputs. */
  stepPlms(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    if (this.numInferenceSteps === null) throw new Error("call setTimesteps before step");
    if (!this.skipPrkSteps && this.ets.length < 3) {
      throw new Error("PNDMScheduler can only run PLMS steps after at least 12 PRK iterations");
    }
    const ratio = Math.floor(this.numTrainTimesteps / this.numInferenceSteps);
    let prevTimestep = timestep - ratio;
    if (this.counter !== 1) {
      this.ets = this.ets.slice(-3);
      this.ets.push(modelOutput);
    } else {
      prevTimestep = timestep;
      timestep = timestep + ratio;
    }
    const e = this.ets;
    const n = e.length;
    let output: Float32Array;
    if (n === 1 && this.counter === 0) {
      output = modelOutput;
      this.curSample = sample;
    } else if (n === 1 && this.counter === 1) {
      output = modelOutput.map((m, i) => f32(f32(m + e[0][i]) / 2));
      sample = this.curSample ?? sample;
      this.curSample = null;
    } else if (n === 2) {
      output = e[1].map((_, i) => f32(f32(f32(3 * e[1][i]) - e[0][i]) / 2));
    } else if (n === 3) {
      output = e[2].map((_, i) => f32(f32(f32(f32(23 * e[2][i]) - f32(16 * e[1][i])) + f32(5 * e[0][i])) / 12));
    } else {
      const w = f32(1 / 24);
      output = e[3].map((_, i) =>
        f32(w * f32(f32(f32(f32(55 * e[3][i]) - f32(59 * e[2][i])) + f32(37 * e[1][i])) - f32(9 * e[0][i]))),
      );
    }
    const prev = this.prevSample(sample, timestep, prevTimestep, output);
    this.counter++;
    return prev;
  }

  /** Formula (9) of the PNDM paper: x_{t-delta} from x_t and the combined model output. */
  private prevSample(sample: Float32Array, timestep: number, prevTimestep: number, modelOutput: Float32Array): Float32Array {
    const alphaProdT = this.schedule.alphaProd(timestep);
    const alphaProdTPrev = prevTimestep >= 0 ? this.schedule.alphaProd(prevTimestep) : this.finalAlphaCumprod;
    const betaProdT = f32(1 - alphaProdT);
    const betaProdTPrev = f32(1 - alphaProdTPrev);
    const sampleCoeff = f32(Math.sqrt(f32(alphaProdTPrev / alphaProdT)));
    const denominator = f32(
      f32(alphaProdT * f32(Math.sqrt(betaProdTPrev))) + f32(Math.sqrt(f32(f32(alphaProdT * betaProdT) * alphaProdTPrev))),
    );
    const alphaDiff = f32(alphaProdTPrev - alphaProdT);
    const sqrtAlpha = f32(Math.sqrt(alphaProdT));
    const sqrtBeta = f32(Math.sqrt(betaProdT));
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) {
      let m = modelOutput[i];
      if (this.predictionType === "v_prediction") m = f32(f32(sqrtAlpha * m) + f32(sqrtBeta * sample[i]));
      out[i] = f32(sampleCoeff * sample[i]) - f32(f32(alphaDiff * m) / denominator);
    }
    return out;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return this.schedule.addNoise(original, noise, timestep);
  }
}
