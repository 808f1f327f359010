// A 2-D convolution from a checkpoint's Conv2d weights (PyTorch's [out, in, kH, kW] is ONNX's layout).
import { attr, type OnnxGraphBuilder } from "../onnx-graph-builder.ts";
import type { ModelWeights } from "../model-weights.ts";

export interface Conv2dOptions {
  readonly stride?: number;
  /** ONNX order: [top, left, bottom, right]; default k//2 on every side ("same" for odd kernels at stride 1). */
  readonly pads?: readonly [number, number, number, number];
}

/** Conv with `${prefix}.weight` and, when the checkpoint has it, `${prefix}.bias`; x is NCHW. */
export function conv2d(g: OnnxGraphBuilder, x: string, weights: ModelWeights, prefix: string, options: Conv2dOptions = {}): string {
  const weightName = `${prefix}.weight`;
  const shape = weights.shape(weightName);
  if (shape === undefined || shape.length !== 4) {
    throw new Error(`${weightName}: expected a 4-D convolution weight, got ${shape === undefined ? "none" : `[${shape.join(", ")}]`}`);
  }
  const [, , kernelH, kernelW] = shape;
  const stride = options.stride ?? 1;
  const pads = options.pads ?? [Math.floor(kernelH / 2), Math.floor(kernelW / 2), Math.floor(kernelH / 2), Math.floor(kernelW / 2)];
  const inputs = [x, g.weight(weightName, weights)];
  if (weights.shape(`${prefix}.bias`) !== undefined) inputs.push(g.weight(`${prefix}.bias`, weights));
  return g.node("Conv", inputs, {
    kernel_shape: attr.ints([kernelH, kernelW]),
    strides: attr.ints([stride, stride]),
    pads: attr.ints(pads),
    dilations: attr.ints([1, 1]),
    group: attr.int(1),
  });
}
