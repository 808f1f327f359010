/** The interpolated (midpoint in log-sigma) schedule shared by the two DPM2 schedulers, in float32. */
import { sigmaToT } from "./noise-schedule.ts";

const f32 = Math.fround;

/** torch.lerp(a, b, 0.5) in float32: weight 0.5 takes the `end - (end - start) * (1 - w)` branch. */
export function lerpHalfF32(start: number, end: number): number {
  return f32(end - f32(f32(end - start) * 0.5));
}

/** exp(lerp(log a, log b, 0.5)) elementwise, float32. */
export function logMidpoints(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((x, i) => f32(Math.exp(lerpHalfF32(f32(Math.log(x)), f32(Math.log(b[i]))))));
}

/** [x0, x1, x1, x2, x2, ..., x_last, x_last, x_last]: cat([x[:1], x[1:].repeat_interleave(2), x[-1:]]). */
export function interleaveWithLast(values: Float32Array): Float32Array {
  const out = new Float32Array(values.length * 2);
  out[0] = values[0];
  for (let i = 1; i < values.length; i++) {
    out[2 * i - 1] = values[i];
    out[2 * i] = values[i];
  }
  out[out.length - 1] = values[values.length - 1];
  return out;
}

/** Timesteps of the interpolated sigmas, via the float32 torch path of _sigma_to_t. */
export function interpolatedTimesteps(sigmasInterpol: Float32Array, logSigmas: Float32Array): Float64Array {
  return Float64Array.from(sigmasInterpol, (s) => sigmaToT(s, logSigmas, true));
}
