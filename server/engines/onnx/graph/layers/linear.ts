// A Linear layer as exporters emit it: MatMul with the weight stored [in, out], then Add the bias.
// MatMul broadcasts over leading dims, so x may be [..., in] of any rank.
import type { OnnxGraphBuilder } from "../onnx-graph-builder.ts";
import type { ModelWeights } from "../model-weights.ts";

/** y = x · Wᵀ + b with `${prefix}.weight` ([out, in] in the checkpoint) and an optional `${prefix}.bias`. */
export function linear(g: OnnxGraphBuilder, x: string, weights: ModelWeights, prefix: string): string {
  const product = g.node("MatMul", [x, g.weight(`${prefix}.weight`, weights, { transpose: true })]);
  if (weights.shape(`${prefix}.bias`) === undefined) return product;
  return g.node("Add", [product, g.weight(`${prefix}.bias`, weights)]);
}
