// GroupNorm for NCHW, in the form torch's exporter emits: onnxruntime's CPU has no GroupNormalization
// kernel worth using (the contrib one is CUDA/NHWC only, opset 18's is slow or absent), while
// InstanceNormalization over [N, groups, C/groups·H·W] is exactly the per-group statistics.
import { attr, float32Tensor, int64Tensor, type OnnxGraphBuilder } from "../onnx-graph-builder.ts";
import type { ModelWeights } from "../model-weights.ts";
import { constant } from "./constants.ts";

export interface GroupNormOptions {
  readonly groups: number;
  readonly epsilon: number;
}

/** torch.nn.GroupNorm(groups, C, eps) with affine `${prefix}.weight`/`${prefix}.bias` ([C]) on x [N, C, H, W]. */
export function groupNorm(g: OnnxGraphBuilder, x: string, weights: ModelWeights, prefix: string, options: GroupNormOptions): string {
  const { groups, epsilon } = options;
  const channels = weights.shape(`${prefix}.weight`)?.[0];
  if (channels === undefined) throw new Error(`the checkpoint has no weight ${prefix}.weight`);
  if (channels % groups !== 0) throw new Error(`${prefix}: ${channels} channels do not split into ${groups} groups`);
  // Reshape's 0 copies N from x, so the batch stays symbolic.
  const grouped = g.node("Reshape", [x, constant(g, `group_norm_shape_${groups}`, () => int64Tensor([3], [0, groups, -1]))]);
  // The affine part is per channel, not per group: unit scale and zero bias here, the real ones after.
  const normalized = g.node("InstanceNormalization", [
    grouped,
    constant(g, `group_norm_ones_${groups}`, () => float32Tensor([groups], new Float32Array(groups).fill(1))),
    constant(g, `group_norm_zeros_${groups}`, () => float32Tensor([groups], new Float32Array(groups))),
  ], { epsilon: attr.float(epsilon) });
  const restored = g.node("Reshape", [normalized, g.node("Shape", [x])]);
  const scaled = g.node("Mul", [restored, g.weight(`${prefix}.weight`, weights, { reshape: [channels, 1, 1] })]);
  return g.node("Add", [scaled, g.weight(`${prefix}.bias`, weights, { reshape: [channels, 1, 1] })]);
}
