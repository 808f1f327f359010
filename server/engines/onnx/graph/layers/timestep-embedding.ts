// diffusers' Timesteps (sinusoidal features) followed by TimestepEmbedding (Linear, SiLU, Linear),
// as UNet2DConditionModel's time_proj and time_embedding. SD 1.x: flip_sin_to_cos=True,
// downscale_freq_shift=0, features as wide as the first level (320), embedding four times that.
import { attr, float32Tensor, int64Tensor, type OnnxGraphBuilder } from "../onnx-graph-builder.ts";
import type { ModelWeights } from "../model-weights.ts";
import { linear } from "./linear.ts";
import { silu } from "./activations.ts";
import { constant } from "./constants.ts";

/**
 * exp(−ln(10000) · i / half) for i < half, rounded step by step to float32 as torch computes it
 * (arange · −ln(max_period) in float32, / half in float32, exp in float32), so t · freq, whose
 * argument reaches ~1000 rad, starts from the same float32 frequencies as diffusers.
 */
function frequencies(half: number, downscaleFreqShift: number): Float32Array {
  const frequencies = new Float32Array(half);
  const negLogPeriod = Math.fround(-Math.log(10_000));
  for (let i = 0; i < half; i++) {
    const exponent = Math.fround(Math.fround(negLogPeriod * i) / (half - downscaleFreqShift));
    frequencies[i] = Math.fround(Math.exp(exponent));
  }
  return frequencies;
}

/**
 * Sinusoidal features of float32 timesteps [N] → [N, channels]: [cos(t·f), sin(t·f)]
 * (flip_sin_to_cos puts cosine first, as SD 1.x was trained).
 */
export function timestepFeatures(g: OnnxGraphBuilder, timesteps: string, channels: number): string {
  if (channels % 2 !== 0) throw new Error(`timestep features need an even width, got ${channels}`);
  const half = channels / 2;
  const freqs = constant(g, `timestep_frequencies_${channels}`, () => float32Tensor([1, half], frequencies(half, 0)));
  const column = g.node("Unsqueeze", [timesteps, constant(g, "unsqueeze_axes_1", () => int64Tensor([1], [1]))]);
  const angles = g.node("Mul", [column, freqs]);
  return g.node("Concat", [g.node("Cos", [angles]), g.node("Sin", [angles])], { axis: attr.int(1) });
}

/**
 * Timesteps [N] (float32, one per batch row) → the time embedding [N, temb] through
 * `${prefix}.linear_1`, SiLU, `${prefix}.linear_2`; the feature width is linear_1's input width.
 * The result is before the SiLU each ResNet applies to it.
 */
export function timestepEmbedding(g: OnnxGraphBuilder, timesteps: string, weights: ModelWeights, prefix: string): string {
  const shape = weights.shape(`${prefix}.linear_1.weight`);
  if (shape === undefined || shape.length !== 2) throw new Error(`the checkpoint has no 2-D weight ${prefix}.linear_1.weight`);
  const features = timestepFeatures(g, timesteps, shape[1]);
  const hidden = silu(g, linear(g, features, weights, `${prefix}.linear_1`));
  return linear(g, hidden, weights, `${prefix}.linear_2`);
}
