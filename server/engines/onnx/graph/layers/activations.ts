// Element-wise activations from plain ONNX ops (onnxruntime's optimiser fuses the common patterns).
import { float32Tensor, type OnnxGraphBuilder } from "../onnx-graph-builder.ts";
import { constant } from "./constants.ts";

function scalar(g: OnnxGraphBuilder, key: string, value: number): string {
  return constant(g, key, () => float32Tensor([], [value]));
}

/** SiLU (swish): x · sigmoid(x). */
export function silu(g: OnnxGraphBuilder, x: string): string {
  return g.node("Mul", [x, g.node("Sigmoid", [x])]);
}

/** CLIP's quick_gelu: x · sigmoid(1.702 x). */
export function quickGelu(g: OnnxGraphBuilder, x: string): string {
  const scaled = g.node("Mul", [x, scalar(g, "quick_gelu_scale", 1.702)]);
  return g.node("Mul", [x, g.node("Sigmoid", [scaled])]);
}

/** Exact GELU, torch's default: 0.5 x (1 + erf(x / √2)); the erf form so it matches torch to float rounding. */
export function gelu(g: OnnxGraphBuilder, x: string): string {
  const erf = g.node("Erf", [g.node("Div", [x, scalar(g, "gelu_sqrt2", Math.SQRT2)])]);
  const onePlus = g.node("Add", [erf, scalar(g, "gelu_one", 1)]);
  return g.node("Mul", [g.node("Mul", [x, onePlus]), scalar(g, "gelu_half", 0.5)]);
}
