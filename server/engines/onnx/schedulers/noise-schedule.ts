/**
 * The numerics the schedulers share, reproducing torch / numpy dtype behaviour where diffusers'
 * golden values depend on it: torch tensors are float32 (every operation rounds, emulated with
 * Math.fround), numpy arrays built from Python floats are float64.
 */
import { fmaf } from "../float32-fma.ts";
import type { BetaConfig } from "./config.ts";

const f32 = Math.fround;

/**
 * torch.linspace(start, end, steps, dtype=float32) on CPU, including its AVX2 vectorised rounding. Each
 * vector's base, `start + step * idx` (or `end - step * (steps - idx - 1)` past the half), is one fused
 * multiply-add in torch's x86-64 builds (GCC contracts it under -mfma, as in its randn kernel: see
 * float32-fma.ts); the lanes' `base + lane * step` are not fused. Measured against Debian's torch 1.13.1:
 * exact for SD's scaled-linear and linear betas, where rounding the product separately missed 102–168 of 1,000.
 */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const scalarAt = (idx: number): number => (idx < halfway ? fmaf(step, idx, s) : fmaf(-step, steps - idx - 1, e));
  // cpu_serial_kernel_vec fills two 8-float vectors per iteration, each vector an arange from a base.
  const width = 8;
  let idx = 0;
  while (idx <= steps - 2 * width) {
    for (let v = 0; v < 2; v++) {
      const base = scalarAt(idx);
      for (let lane = 0; lane < width; lane++) out[idx + lane] = f32(base + f32(lane * step));
      idx += width;
    }
  }
  for (; idx < steps; idx++) out[idx] = scalarAt(idx);
  return out;
}

/** diffusers' betas_for_alpha_bar with the Glide cosine schedule (Python floats, then float32). */
function cosineBetas(numTimesteps: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
  const betas = new Float32Array(numTimesteps);
  for (let i = 0; i < numTimesteps; i++) {
    betas[i] = Math.min(1 - alphaBar((i + 1) / numTimesteps) / alphaBar(i / numTimesteps), maxBeta);
  }
  return betas;
}

export function makeBetas(config: BetaConfig): Float32Array {
  if (config.trainedBetas !== null) return Float32Array.from(config.trainedBetas);
  const n = config.numTrainTimesteps;
  switch (config.betaSchedule) {
    case "linear":
      return torchLinspaceF32(config.betaStart, config.betaEnd, n);
    case "scaled_linear": {
      const roots = torchLinspaceF32(config.betaStart ** 0.5, config.betaEnd ** 0.5, n);
      return roots.map((r) => f32(r * r));
    }
    case "squaredcos_cap_v2":
      return cosineBetas(n);
  }
}

/** alphas_cumprod = torch.cumprod(1 - betas): torch accumulates in double and stores float32. */
export function alphasCumprodFromBetas(betas: Float32Array): Float32Array {
  const out = new Float32Array(betas.length);
  let product = 1;
  for (let i = 0; i < betas.length; i++) {
    product *= f32(1 - betas[i]);
    out[i] = product;
  }
  return out;
}

/** ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5 on the float32 tensor (ascending in t). */
export function sigmasFromAlphasCumprod(alphasCumprod: Float32Array): Float32Array {
  return alphasCumprod.map((a) => f32(Math.sqrt(f32(f32(1 - a) / a))));
}

/** np.log of a float32 array stays float32. */
export function logF32(values: Float32Array): Float32Array {
  return values.map((v) => f32(Math.log(v)));
}

/** numpy.linspace(start, stop, num) in float64 (y = i * step + start, last = stop). */
export function npLinspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  if (num === 1) {
    out[0] = start;
    return out;
  }
  const step = (stop - start) / (num - 1);
  for (let i = 0; i < num; i++) out[i] = i * step + start;
  out[num - 1] = stop;
  return out;
}

/** numpy.round: half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** numpy.interp(x, arange(len(fp)), fp) in float64, with numpy's exact-node rule. */
export function npInterpOnIndices(x: ArrayLike<number>, fp: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  const last = fp.length - 1;
  for (let i = 0; i < x.length; i++) {
    const xv = x[i];
    if (xv <= 0) {
      out[i] = fp[0];
    } else if (xv >= last) {
      out[i] = fp[last];
    } else {
      const j = Math.floor(xv);
      if (j === xv) {
        out[i] = fp[j];
      } else {
        // xp is arange, so each interval has width 1 and the slope is the difference.
        out[i] = (fp[j + 1] - fp[j]) * (xv - j) + fp[j];
      }
    }
  }
  return out;
}

/** Karras et al. (2022) sigmas between in_sigmas' ends (rho = 7), float64 as in diffusers. */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, numInferenceSteps: number): Float64Array {
  const rho = 7.0;
  const ramp = npLinspace(0, 1, numInferenceSteps);
  const minInvRho = sigmaMin ** (1 / rho);
  const maxInvRho = sigmaMax ** (1 / rho);
  return ramp.map((r) => (maxInvRho + r * (minInvRho - maxInvRho)) ** rho);
}

/**
 * diffusers' _sigma_to_t: the fractional timestep whose log-sigma matches, by linear interpolation
 * on the float32 log-sigma table. `float32Weights` reproduces the KDPM2 path, where sigma and the
 * table are torch float32 tensors so the interpolation weight is computed in float32.
 */
export function sigmaToT(sigma: number, logSigmas: Float32Array, float32Weights = false): number {
  const logSigma = float32Weights ? f32(Math.log(f32(Math.max(sigma, 1e-10)))) : Math.log(Math.max(sigma, 1e-10));
  // low_idx = last index whose log-sigma is <= log_sigma (argmax of the cumulative count), clipped.
  let count = 0;
  let lowIdx = 0;
  let bestCount = -1;
  for (let i = 0; i < logSigmas.length; i++) {
    if (float32Weights ? f32(logSigma - logSigmas[i]) >= 0 : logSigma - logSigmas[i] >= 0) count++;
    if (count > bestCount) {
      bestCount = count;
      lowIdx = i;
    }
  }
  lowIdx = Math.min(lowIdx, logSigmas.length - 2);
  const highIdx = lowIdx + 1;
  const low = logSigmas[lowIdx];
  const high = logSigmas[highIdx];
  let w = float32Weights ? f32(f32(low - logSigma) / f32(low - high)) : (low - logSigma) / f32(low - high);
  w = Math.min(Math.max(w, 0), 1);
  if (!float32Weights) return (1 - w) * lowIdx + w * highIdx;
  // (1 - w) * low_idx + w * high_idx on float32 tensors (an int64 index times float32 is float32).
  return f32(f32(f32(1 - w) * lowIdx) + f32(w * highIdx));
}

/**
 * The inference timesteps of a "discrete" (k-diffusion style) scheduler for the three spacings of
 * Lin et al. (2023) Table 2, as float32 values like diffusers' np.float32 arrays.
 */
export function spacedTimestepsF32(
  spacing: "linspace" | "leading" | "trailing",
  numTrainTimesteps: number,
  numInferenceSteps: number,
  stepsOffset: number,
): Float64Array {
  const out = new Float64Array(numInferenceSteps);
  if (spacing === "linspace") {
    const t = npLinspace(0, numTrainTimesteps - 1, numInferenceSteps);
    for (let i = 0; i < numInferenceSteps; i++) out[i] = f32(t[numInferenceSteps - 1 - i]);
  } else if (spacing === "leading") {
    const ratio = Math.floor(numTrainTimesteps / numInferenceSteps);
    for (let i = 0; i < numInferenceSteps; i++) out[i] = f32((numInferenceSteps - 1 - i) * ratio + stepsOffset);
  } else {
    const ratio = numTrainTimesteps / numInferenceSteps;
    const values = npArangeDown(numTrainTimesteps, ratio);
    if (values.length !== numInferenceSteps) {
      throw new Error(`trailing spacing gives ${values.length} timesteps for ${numInferenceSteps} steps`);
    }
    for (let i = 0; i < values.length; i++) out[i] = f32(roundHalfEven(values[i]) - 1);
  }
  return out;
}

/** np.arange(start, 0, -step) for a positive float step. */
export function npArangeDown(start: number, step: number): number[] {
  const count = Math.ceil(start / step);
  const values: number[] = [];
  for (let i = 0; i < count; i++) values.push(start + i * -step);
  return values;
}

/**
 * diffusers' index_for_timestep: the position of `timestep` in the schedule; when it occurs more than
 * once the second occurrence, so a loop started mid-schedule does not skip a sigma.
 */
export function indexForTimestep(timesteps: Float64Array, timestep: number): number {
  const matches: number[] = [];
  for (let i = 0; i < timesteps.length && matches.length < 2; i++) if (timesteps[i] === timestep) matches.push(i);
  if (matches.length === 0) throw new Error(`timestep ${timestep} is not in the schedule`);
  return matches.length > 1 ? matches[1] : matches[0];
}

/** torch.quantile(values, q) with linear interpolation, in float32 as torch computes it. */
export function quantileF32(values: Float32Array, q: number): number {
  const sorted = Float32Array.from(values).sort();
  const rank = f32(f32(q) * (sorted.length - 1));
  const below = Math.floor(rank);
  const above = Math.min(below + 1, sorted.length - 1);
  const weight = f32(rank - below);
  const start = sorted[below];
  const end = sorted[above];
  return weight < 0.5 ? f32(start + f32(weight * f32(end - start))) : f32(end - f32(f32(end - start) * f32(1 - weight)));
}

/**
 * Imagen's dynamic thresholding (diffusers' _threshold_sample): per batch item, clamp to the
 * `ratio` quantile of |x0| (itself clamped to [1, maxValue]) and rescale.
 */
export function thresholdSample(sample: Float32Array, batchSize: number, ratio: number, maxValue: number): Float32Array {
  const out = new Float32Array(sample.length);
  const per = sample.length / batchSize;
  for (let b = 0; b < batchSize; b++) {
    const item = sample.subarray(b * per, (b + 1) * per);
    const quantile = quantileF32(item.map(Math.abs), ratio);
    // torch.clamp(min=1, max=maxValue) applies max after min, so maxValue wins when below 1.
    const s = f32(Math.min(Math.max(quantile, 1), maxValue));
    for (let i = 0; i < per; i++) out[b * per + i] = f32(Math.min(Math.max(item[i], -s), s) / s);
  }
  return out;
}
