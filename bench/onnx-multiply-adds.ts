/**
 * Multiply-adds of one call of an ONNX graph at given input shapes, counted statically from the graph:
 * shapes are propagated node by node (with the values of the small integer tensors that torch's exporter
 * computes shapes from: Shape → Gather → Concat → Reshape), and every Conv, ConvTranspose, MatMul and Gemm
 * adds its output size × its reduction length. Elementwise work (norms, activations, softmax) is left out:
 * it is a few percent of a UNet's arithmetic and not what a CPU's FMA peak measures.
 */
import { readFile } from "node:fs/promises";
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
/** A graph node with protobuf's optional fields filled in. */
interface Node {
  readonly opType: string;
  readonly input: readonly string[];
  readonly output: readonly string[];
  readonly attribute: readonly onnxProto.onnx.IAttributeProto[];
}
type Tensor = onnxProto.onnx.ITensorProto;

interface Value {
  readonly shape: readonly number[];
  /** Contents of small tensors (at most SMALL elements), which shapes are computed from. */
  readonly values?: readonly number[];
  readonly integer: boolean;
}

export interface MultiplyAddCount {
  /** Multiply-adds of Conv, ConvTranspose, MatMul and Gemm nodes whose shapes were found. */
  readonly multiplyAdds: number;
  readonly countedNodes: number;
  /** Nodes that do multiply-adds but whose input shapes could not be derived (then the count is low). */
  readonly uncountedNodes: number;
  /** Op types met that the shape walk does not know: their outputs, and what depends on them, have no shape. */
  readonly unknownOps: readonly string[];
}

const SMALL = 64;
const T = onnx.TensorProto.DataType;
const INTEGER_TYPES = new Set<number>([T.INT64, T.INT32, T.INT16, T.INT8, T.UINT8, T.UINT16, T.UINT32, T.UINT64, T.BOOL]);
/** Ops whose single output has the shape of their first input. */
const SAME_SHAPE = new Set([
  "Identity", "Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Log", "Sqrt", "Neg", "Abs", "Sin", "Cos", "Softmax", "LogSoftmax",
  "LayerNormalization", "InstanceNormalization", "BatchNormalization", "GroupNormalization", "Trilu", "Not", "Floor", "Ceil",
  "Round", "Reciprocal", "LeakyRelu", "Gelu", "HardSigmoid", "Softplus", "Clip", "Dropout", "CumSum", "IsNaN", "Mish",
]);
const BROADCAST = new Set(["Add", "Sub", "Mul", "Div", "Pow", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Max", "Min", "Mod", "Where"]);

function toNumber(value: number | { toNumber(): number }): number {
  return typeof value === "number" ? value : value.toNumber();
}

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function tensorValue(tensor: Tensor): Value {
  const shape = (tensor.dims ?? []).map(toNumber);
  const dataType = tensor.dataType ?? T.UNDEFINED;
  const integer = INTEGER_TYPES.has(dataType);
  if (product(shape) > SMALL) return { shape, integer };
  let values: number[] | undefined;
  const raw = tensor.rawData;
  if (raw && raw.length > 0) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const count = product(shape);
    values = [];
    for (let i = 0; i < count; i++) {
      if (dataType === T.INT64) values.push(Number(view.getBigInt64(i * 8, true)));
      else if (dataType === T.INT32) values.push(view.getInt32(i * 4, true));
      else if (dataType === T.FLOAT) values.push(view.getFloat32(i * 4, true));
      else if (dataType === T.DOUBLE) values.push(view.getFloat64(i * 8, true));
      else if (dataType === T.BOOL || dataType === T.UINT8) values.push(view.getUint8(i));
      else return { shape, integer };
    }
  } else if (tensor.int64Data?.length) values = tensor.int64Data.map(toNumber);
  else if (tensor.int32Data?.length) values = [...tensor.int32Data];
  else if (tensor.floatData?.length) values = [...tensor.floatData];
  else if (tensor.doubleData?.length) values = [...tensor.doubleData];
  return { shape, integer, values };
}

/** Row-major index of every element of `shape`, mapped through `source` to a flat index of the input. */
function gatherSmall(values: readonly number[], inShape: readonly number[], outShape: readonly number[], source: (index: number[]) => number[]): number[] {
  const inStrides = inShape.map((_, i) => product(inShape.slice(i + 1)));
  const out: number[] = [];
  for (let flat = 0; flat < product(outShape); flat++) {
    const index = outShape.map((_, i) => Math.floor(flat / product(outShape.slice(i + 1))) % outShape[i]);
    out.push(values[source(index).reduce((sum, v, i) => sum + v * inStrides[i], 0)]);
  }
  return out;
}

function broadcast(shapes: readonly (readonly number[])[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let dim = 1;
    for (const shape of shapes) {
      const d = shape[shape.length - rank + i] ?? 1;
      if (d !== 1) dim = d;
    }
    out.push(dim);
  }
  return out;
}

/** Elementwise arithmetic on small tensors, broadcasting scalars and equal lengths (what shape code does). */
function elementwise(op: string, inputs: readonly Value[], integer: boolean): number[] | undefined {
  if (inputs.some((v) => !v.values)) return undefined;
  const length = Math.max(...inputs.map((v) => v.values!.length));
  if (inputs.some((v) => v.values!.length !== 1 && v.values!.length !== length)) return undefined;
  const at = (v: Value, i: number) => (v.values!.length === 1 ? v.values![0] : v.values![i]);
  const out: number[] = [];
  for (let i = 0; i < length; i++) {
    const [a, b, c] = inputs.map((v) => at(v, i));
    let r: number;
    switch (op) {
      case "Add": r = a + b; break;
      case "Sub": r = a - b; break;
      case "Mul": r = a * b; break;
      case "Div": r = integer ? Math.trunc(a / b) : a / b; break;
      case "Pow": r = a ** b; break;
      case "Mod": r = a % b; break;
      case "Equal": r = Number(a === b); break;
      case "Less": r = Number(a < b); break;
      case "Greater": r = Number(a > b); break;
      case "Max": r = Math.max(a, b); break;
      case "Min": r = Math.min(a, b); break;
      case "Where": r = a ? b : c; break;
      default: return undefined;
    }
    out.push(r);
  }
  return out;
}

function attribute(node: Node, name: string): onnxProto.onnx.IAttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}
const intAttr = (node: Node, name: string, fallback: number) => {
  const a = attribute(node, name);
  return a?.i !== undefined && a.i !== null ? toNumber(a.i) : fallback;
};
const intsAttr = (node: Node, name: string) => attribute(node, name)?.ints?.map(toNumber);

/** One node's output values from its inputs, or undefined when a shape cannot be derived. */
function infer(node: Node, inputs: readonly (Value | undefined)[]): (Value | undefined)[] | undefined {
  const op = node.opType;
  const x = inputs[0];
  const axisOf = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);
  if (op === "Constant") {
    const t = attribute(node, "value")?.t;
    return t ? [tensorValue(t)] : undefined;
  }
  if (SAME_SHAPE.has(op)) return x ? [{ ...x, values: op === "Identity" ? x.values : undefined }] : undefined;
  if (BROADCAST.has(op)) {
    if (inputs.some((v) => !v)) return undefined;
    const all = inputs as Value[];
    const integer = op === "Where" ? all[1].integer : ["Equal", "Less", "Greater", "And", "Or"].includes(op) || all[0].integer;
    return [{ shape: broadcast(all.map((v) => v.shape)), integer, values: elementwise(op, all, all[0].integer) }];
  }
  if (!x) return undefined;
  switch (op) {
    case "Cast": {
      const to = intAttr(node, "to", T.FLOAT);
      const integer = INTEGER_TYPES.has(to);
      return [{ shape: x.shape, integer, values: x.values?.map((v) => (integer ? Math.trunc(v) : v)) }];
    }
    case "Shape": {
      const start = axisOf(intAttr(node, "start", 0), x.shape.length);
      const end = attribute(node, "end") ? axisOf(intAttr(node, "end", 0), x.shape.length) : x.shape.length;
      const values = x.shape.slice(start, end);
      return [{ shape: [values.length], integer: true, values }];
    }
    case "Gather": {
      const indices = inputs[1];
      if (!indices) return undefined;
      const axis = axisOf(intAttr(node, "axis", 0), x.shape.length);
      const shape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
      let values: number[] | undefined;
      if (x.values && indices.values && x.shape.length === 1) {
        values = indices.values.map((i) => x.values![i < 0 ? i + x.values!.length : i]);
      }
      return [{ shape, integer: x.integer, values }];
    }
    case "Unsqueeze":
    case "Squeeze": {
      const axes = inputs[1]?.values ?? intsAttr(node, "axes");
      let shape: number[];
      if (op === "Unsqueeze") {
        if (!axes) return undefined;
        const rank = x.shape.length + axes.length;
        const at = new Set(axes.map((a) => axisOf(a, rank)));
        shape = [];
        let k = 0;
        for (let i = 0; i < rank; i++) shape.push(at.has(i) ? 1 : x.shape[k++]);
      } else {
        const at = new Set((axes ?? x.shape.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => axisOf(a, x.shape.length)));
        shape = x.shape.filter((_, i) => !at.has(i));
      }
      return [{ shape, integer: x.integer, values: x.values }];
    }
    case "Concat": {
      if (inputs.some((v) => !v)) return undefined;
      const all = inputs as Value[];
      const axis = axisOf(intAttr(node, "axis", 0), x.shape.length);
      const shape = [...x.shape];
      shape[axis] = all.reduce((sum, v) => sum + v.shape[axis], 0);
      const values = all.every((v) => v.values) && x.shape.length === 1 ? all.flatMap((v) => v.values!) : undefined;
      return [{ shape, integer: x.integer, values }];
    }
    case "Range": {
      const [start, limit, delta] = inputs.map((v) => v?.values?.[0]);
      if (start === undefined || limit === undefined || delta === undefined) return undefined;
      const count = Math.max(0, Math.ceil((limit - start) / delta));
      return [{ shape: [count], integer: x.integer, values: count <= SMALL ? Array.from({ length: count }, (_, i) => start + i * delta) : undefined }];
    }
    case "ConstantOfShape": {
      if (!x.values) return undefined;
      const fill = attribute(node, "value")?.t;
      const filled = fill ? tensorValue(fill) : { shape: [1], integer: false, values: [0] };
      const count = product(x.values);
      return [{ shape: x.values, integer: filled.integer, values: count <= SMALL && filled.values ? new Array(count).fill(filled.values[0]) : undefined }];
    }
    case "Expand": {
      const to = inputs[1]?.values;
      if (!to) return undefined;
      return [{ shape: broadcast([x.shape, to]), integer: x.integer, values: x.values?.length === 1 && to.length === 1 ? new Array(to[0]).fill(x.values[0]) : undefined }];
    }
    case "Reshape": {
      const target = inputs[1]?.values;
      if (!target) return undefined;
      const shape = target.map((d, i) => (d === 0 ? x.shape[i] : d));
      const known = product(shape.filter((d) => d !== -1));
      return [{ shape: shape.map((d) => (d === -1 ? product(x.shape) / known : d)), integer: x.integer, values: x.values }];
    }
    case "Flatten": {
      const axis = axisOf(intAttr(node, "axis", 1), x.shape.length);
      return [{ shape: [product(x.shape.slice(0, axis)), product(x.shape.slice(axis))], integer: x.integer }];
    }
    case "Transpose": {
      const perm = intsAttr(node, "perm") ?? x.shape.map((_, i) => x.shape.length - 1 - i);
      const shape = perm.map((p) => x.shape[p]);
      const values = x.values && gatherSmall(x.values, x.shape, shape, (index) => {
        const source = new Array<number>(index.length);
        perm.forEach((p, i) => (source[p] = index[i]));
        return source;
      });
      return [{ shape, integer: x.integer, values }];
    }
    case "Slice": {
      const [starts, ends, axesIn, stepsIn] = [inputs[1], inputs[2], inputs[3], inputs[4]].map((v) => v?.values);
      if (!starts || !ends) return undefined;
      const axes = axesIn ?? starts.map((_, i) => i);
      const shape = [...x.shape];
      const first = x.shape.map(() => 0);
      const stride = x.shape.map(() => 1);
      axes.forEach((a, i) => {
        const axis = axisOf(a, x.shape.length);
        const dim = x.shape[axis];
        const step = stepsIn?.[i] ?? 1;
        const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v < 0 ? v + dim : v));
        const s = step > 0 ? clamp(starts[i], 0, dim) : clamp(starts[i], -1, dim - 1);
        const e = step > 0 ? clamp(ends[i], 0, dim) : clamp(ends[i], -1, dim - 1);
        shape[axis] = Math.max(0, Math.ceil((e - s) / step));
        first[axis] = s;
        stride[axis] = step;
      });
      const values = x.values && gatherSmall(x.values, x.shape, shape, (index) => index.map((k, i) => first[i] + k * stride[i]));
      return [{ shape, integer: x.integer, values }];
    }
    case "Split": {
      const axis = axisOf(intAttr(node, "axis", 0), x.shape.length);
      const parts = inputs[1]?.values ?? intsAttr(node, "split") ?? new Array(node.output.length).fill(x.shape[axis] / node.output.length);
      return parts.map((size) => ({ shape: x.shape.map((d, i) => (i === axis ? size : d)), integer: x.integer }));
    }
    case "Pad": {
      const pads = inputs[1]?.values ?? intsAttr(node, "pads");
      if (!pads) return undefined;
      const rank = x.shape.length;
      return [{ shape: x.shape.map((d, i) => d + pads[i] + pads[i + rank]), integer: x.integer }];
    }
    case "Resize":
    case "Upsample": {
      const sizes = inputs[3]?.values;
      const scales = op === "Upsample" ? inputs[1]?.values : inputs[2]?.values;
      if (sizes && sizes.length === x.shape.length) return [{ shape: sizes, integer: x.integer }];
      if (scales && scales.length === x.shape.length) return [{ shape: x.shape.map((d, i) => Math.floor(d * scales[i])), integer: x.integer }];
      return undefined;
    }
    case "ReduceMean":
    case "ReduceSum":
    case "ReduceMax":
    case "ArgMax": {
      const keep = intAttr(node, "keepdims", 1) === 1;
      const axes = (op === "ArgMax" ? [intAttr(node, "axis", 0)] : (intsAttr(node, "axes") ?? inputs[1]?.values ?? x.shape.map((_, i) => i))).map((a) =>
        axisOf(a, x.shape.length),
      );
      const shape = keep ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
      return [{ shape, integer: op === "ArgMax" || x.integer }];
    }
    case "MatMul": {
      const y = inputs[1];
      if (!y) return undefined;
      const a = x.shape.length === 1 ? [1, x.shape[0]] : x.shape;
      const b = y.shape.length === 1 ? [y.shape[0], 1] : y.shape;
      const batch = broadcast([a.slice(0, -2), b.slice(0, -2)]);
      const shape = [...batch, a[a.length - 2], b[b.length - 1]];
      return [{ shape: shape.filter((_, i) => !(x.shape.length === 1 && i === shape.length - 2) && !(y.shape.length === 1 && i === shape.length - 1)), integer: x.integer }];
    }
    case "Gemm": {
      const y = inputs[1];
      if (!y) return undefined;
      const m = intAttr(node, "transA", 0) ? x.shape[1] : x.shape[0];
      const n = intAttr(node, "transB", 0) ? y.shape[0] : y.shape[1];
      return [{ shape: [m, n], integer: false }];
    }
    case "Conv":
    case "ConvTranspose": {
      const w = inputs[1];
      if (!w) return undefined;
      const spatial = x.shape.length - 2;
      const kernel = w.shape.slice(2);
      const strides = intsAttr(node, "strides") ?? new Array(spatial).fill(1);
      const dilations = intsAttr(node, "dilations") ?? new Array(spatial).fill(1);
      const pads = intsAttr(node, "pads") ?? new Array(2 * spatial).fill(0);
      const autoPad = attribute(node, "auto_pad")?.s;
      const autoPadName = autoPad ? new TextDecoder().decode(autoPad) : "NOTSET";
      const group = intAttr(node, "group", 1);
      const out = kernel.map((k, i) => {
        const size = x.shape[2 + i];
        if (op === "ConvTranspose") return strides[i] * (size - 1) + ((k - 1) * dilations[i] + 1) - pads[i] - pads[i + spatial];
        if (autoPadName === "SAME_UPPER" || autoPadName === "SAME_LOWER") return Math.ceil(size / strides[i]);
        return Math.floor((size + pads[i] + pads[i + spatial] - dilations[i] * (k - 1) - 1) / strides[i]) + 1;
      });
      const channels = op === "ConvTranspose" ? w.shape[1] * group : w.shape[0];
      return [{ shape: [x.shape[0], channels, ...out], integer: false }];
    }
    default:
      return undefined;
  }
}

function multiplyAddsOf(node: Node, inputs: readonly (Value | undefined)[], outputs: readonly (Value | undefined)[]): number | undefined {
  const [x, w] = inputs;
  const out = outputs[0];
  if (!x || !w || !out) return undefined;
  switch (node.opType) {
    case "Conv":
      return product(out.shape) * (x.shape[1] / intAttr(node, "group", 1)) * product(w.shape.slice(2));
    case "ConvTranspose":
      return product(x.shape) * product(w.shape.slice(1));
    case "MatMul":
      return product(out.shape) * x.shape[x.shape.length - 1];
    case "Gemm":
      return product(out.shape) * (intAttr(node, "transA", 0) ? x.shape[0] : x.shape[1]);
    default:
      return 0;
  }
}

const COUNTED = new Set(["Conv", "ConvTranspose", "MatMul", "Gemm"]);

/** Counts the multiply-adds of one call of the model in `file` with the graph inputs shaped as given. */
export async function countMultiplyAdds(file: string, inputShapes: Readonly<Record<string, readonly number[]>>): Promise<MultiplyAddCount> {
  // Only the graph: with external data, model.onnx is small; an inline model is read whole (at most ~2 GB).
  const model = onnx.ModelProto.decode(await readFile(file));
  const graph = model.graph;
  if (!graph) throw new Error(`${file}: no graph in this ONNX file`);
  const values = new Map<string, Value>();
  for (const tensor of graph.initializer ?? []) values.set(tensor.name ?? "", tensorValue(tensor));
  const graphInputs = graph.input ?? [];
  for (const input of graphInputs) {
    const name = input.name ?? "";
    if (values.has(name)) continue;
    const given = inputShapes[name];
    const type = input.type?.tensorType;
    const declared = type?.shape?.dim?.map((d) => (d.dimValue !== undefined && d.dimValue !== null ? toNumber(d.dimValue) : 0));
    const shape = given ?? (declared?.every((d) => d > 0) ? declared : undefined);
    if (!shape) throw new Error(`${file}: input "${name}" has a free shape; give it (inputs: ${graphInputs.map((i) => i.name).join(", ")})`);
    values.set(name, { shape, integer: INTEGER_TYPES.has(type?.elemType ?? T.FLOAT) });
  }
  const nodes: Node[] = (graph.node ?? []).map((n) => ({ opType: n.opType ?? "", input: n.input ?? [], output: n.output ?? [], attribute: n.attribute ?? [] }));
  let multiplyAdds = 0;
  let countedNodes = 0;
  let uncountedNodes = 0;
  const unknownOps = new Set<string>();
  for (const node of nodes) {
    const inputs = node.input.map((name) => (name ? values.get(name) : undefined));
    const outputs = infer(node, inputs);
    if (!outputs && !SAME_SHAPE.has(node.opType) && !BROADCAST.has(node.opType) && inputs[0]) unknownOps.add(node.opType);
    outputs?.forEach((value, i) => {
      if (value && node.output[i]) values.set(node.output[i], value);
    });
    if (COUNTED.has(node.opType)) {
      const count = outputs ? multiplyAddsOf(node, inputs, outputs) : undefined;
      if (count === undefined) uncountedNodes++;
      else {
        multiplyAdds += count;
        countedNodes++;
      }
    }
  }
  return { multiplyAdds, countedNodes, uncountedNodes, unknownOps: [...unknownOps].sort() };
}
