// LayerNormalization over the last axis (an opset-17 op; onnxruntime fuses nothing further here).
import { attr, type OnnxGraphBuilder } from "../onnx-graph-builder.ts";
import type { ModelWeights } from "../model-weights.ts";

/** torch.nn.LayerNorm(hidden) with `${prefix}.weight` and `${prefix}.bias`, normalising the last axis. */
export function layerNorm(g: OnnxGraphBuilder, x: string, weights: ModelWeights, prefix: string, epsilon: number): string {
  return g.node("LayerNormalization", [x, g.weight(`${prefix}.weight`, weights), g.weight(`${prefix}.bias`, weights)], {
    axis: attr.int(-1),
    epsilon: attr.float(epsilon),
  });
}
