// Small constants shared by every layer of one graph: made once per builder and name, so a graph
// with a hundred GroupNorms holds one "ones" vector, not a hundred.
import type { OnnxGraphBuilder, TensorData } from "../onnx-graph-builder.ts";

const made = new WeakMap<OnnxGraphBuilder, Map<string, string>>();

/**
 * The initializer `key` of this graph, added on first use. The key names the value: callers give
 * different values different keys (e.g. `ones_32` and `ones_8`).
 */
export function constant(g: OnnxGraphBuilder, key: string, make: () => TensorData): string {
  let constants = made.get(g);
  if (constants === undefined) {
    constants = new Map();
    made.set(g, constants);
  }
  let name = constants.get(key);
  if (name === undefined) {
    name = g.initializer(key, make());
    constants.set(key, name);
  }
  return name;
}
