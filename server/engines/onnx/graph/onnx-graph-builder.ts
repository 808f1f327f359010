// A small typed builder for ONNX graphs: Maskflow writes its model graphs from checkpoints with it
// (there is no Python `onnx` here), and the tests their miniature models. It emits ModelProto bytes
// through onnx-proto's protobufjs classes. `build` keeps everything in memory (small graphs);
// `writeModel` streams checkpoint weights one tensor at a time into an external data file, each at
// an aligned offset, so a model of gigabytes is written with one tensor in memory.
import { open, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import onnxProto from "onnx-proto";
import { toFloat16Bits } from "../float16.ts";
import type { ModelWeights } from "./model-weights.ts";

const { onnx } = onnxProto;

export type ElementType = "float32" | "float16" | "int32" | "int64";

/** A dimension: a fixed size, or a symbolic name such as "batch_size". */
export type Dim = number | string;

const DATA_TYPE: Record<ElementType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int32: onnx.TensorProto.DataType.INT32,
  int64: onnx.TensorProto.DataType.INT64,
};

const BYTES_PER_ELEMENT: Record<ElementType, number> = { float32: 4, float16: 2, int32: 4, int64: 8 };

export type AttributeValue =
  | { readonly kind: "int"; readonly value: number }
  | { readonly kind: "ints"; readonly value: readonly number[] }
  | { readonly kind: "float"; readonly value: number }
  | { readonly kind: "floats"; readonly value: readonly number[] }
  | { readonly kind: "string"; readonly value: string };

/** Attribute constructors: ONNX distinguishes int and float attributes, JavaScript numbers do not. */
export const attr = {
  int: (value: number): AttributeValue => ({ kind: "int", value }),
  ints: (value: readonly number[]): AttributeValue => ({ kind: "ints", value }),
  float: (value: number): AttributeValue => ({ kind: "float", value }),
  floats: (value: readonly number[]): AttributeValue => ({ kind: "floats", value }),
  string: (value: string): AttributeValue => ({ kind: "string", value }),
};

/** A tensor's contents as ONNX raw_data: little-endian bytes in row-major order. */
export interface TensorData {
  readonly type: ElementType;
  readonly dims: readonly number[];
  readonly bytes: Uint8Array;
}

function elementCount(dims: readonly number[]): number {
  return dims.reduce((product, dim) => product * dim, 1);
}

function checkLength(dims: readonly number[], length: number): void {
  if (elementCount(dims) !== length) {
    throw new Error(`tensor of shape [${dims.join(", ")}] needs ${elementCount(dims)} values, got ${length}`);
  }
}

// Explicit little-endian writes: raw_data is little-endian whatever the host is.
export function float32Tensor(dims: readonly number[], values: ArrayLike<number>): TensorData {
  checkLength(dims, values.length);
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  return { type: "float32", dims, bytes };
}

export function float16Tensor(dims: readonly number[], values: ArrayLike<number>): TensorData {
  checkLength(dims, values.length);
  const bytes = new Uint8Array(values.length * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setUint16(i * 2, toFloat16Bits(values[i]), true);
  return { type: "float16", dims, bytes };
}

export function int32Tensor(dims: readonly number[], values: ArrayLike<number>): TensorData {
  checkLength(dims, values.length);
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setInt32(i * 4, values[i], true);
  return { type: "int32", dims, bytes };
}

export function int64Tensor(dims: readonly number[], values: ArrayLike<number>): TensorData {
  checkLength(dims, values.length);
  const bytes = new Uint8Array(values.length * 8);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setBigInt64(i * 8, BigInt(values[i]), true);
  return { type: "int64", dims, bytes };
}


export interface ExternalDataOptions {
  /** File name next to model.onnx, e.g. "model.onnx_data" (optimum) or "weights.pb" (diffusers' old converter). */
  readonly location: string;
  /** Initializers of at least this many bytes go to the external file (onnx's default threshold is 1024). */
  readonly minBytes: number;
}

export interface BuildOptions {
  readonly opsetVersion: number;
  readonly producerName: string;
  readonly producerVersion?: string;
  readonly externalData?: ExternalDataOptions;
}

export interface BuiltModel {
  /** The ModelProto bytes (model.onnx). */
  readonly model: Uint8Array;
  /** The external data file's bytes, or null when every initializer stayed inline. */
  readonly externalData: Uint8Array | null;
}

interface ValueInfo {
  readonly name: string;
  readonly type: ElementType;
  readonly dims: readonly Dim[];
}

interface NodeRecord {
  readonly opType: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: Readonly<Record<string, AttributeValue>>;
  readonly domain: string;
}

/** How a checkpoint tensor becomes an initializer: ONNX's MatMul wants a Linear's weight transposed. */
export interface WeightTransform {
  /** A 2-D weight [out, in] is written as [in, out]. */
  readonly transpose?: boolean;
  /** Written with these dims (same element count), e.g. a 1×1 convolution's [C, C, 1, 1] as [C, C]. */
  readonly reshape?: readonly number[];
}

/** An initializer whose values are read from the checkpoint only when the model file is written. */
interface LazyWeight {
  readonly name: string;
  readonly dims: readonly number[];
  readonly source: ModelWeights;
  readonly transpose: boolean;
}

export interface WriteModelOptions {
  readonly opsetVersion: number;
  readonly producerName: string;
  readonly producerVersion?: string;
  /** The external data file's name beside model.onnx ("model.onnx_data", as optimum names it). */
  readonly externalDataFile: string;
  /** Weights of more bytes than this go to the external file; smaller ones stay inline (default 1024, onnx's). */
  readonly inlineMaxBytes?: number;
  /** Offset alignment in the external file; 64 KiB lets onnxruntime map a tensor instead of copying it. */
  readonly alignment?: number;
  /** After each weight written: bytes of weights written so far, of the total. */
  readonly onProgress?: (writtenBytes: number, totalBytes: number) => void;
  readonly signal?: AbortSignal;
}

export const MICROSOFT_DOMAIN = "com.microsoft";

function toValueInfoProto(info: ValueInfo): onnxProto.onnx.IValueInfoProto {
  return {
    name: info.name,
    type: {
      tensorType: {
        elemType: DATA_TYPE[info.type],
        shape: { dim: info.dims.map((dim) => (typeof dim === "number" ? { dimValue: dim } : { dimParam: dim })) },
      },
    },
  };
}

function toAttributeProto(name: string, value: AttributeValue): onnxProto.onnx.IAttributeProto {
  const types = onnx.AttributeProto.AttributeType;
  switch (value.kind) {
    case "int":
      return { name, type: types.INT, i: value.value };
    case "ints":
      return { name, type: types.INTS, ints: [...value.value] };
    case "float":
      return { name, type: types.FLOAT, f: value.value };
    case "floats":
      return { name, type: types.FLOATS, floats: [...value.value] };
    case "string":
      return { name, type: types.STRING, s: new TextEncoder().encode(value.value) };
  }
}

/** Builds one graph; names are made unique with a counter so graphs come out identical run to run. */
export class OnnxGraphBuilder {
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly initializers: { name: string; tensor: TensorData }[] = [];
  private readonly weights: LazyWeight[] = [];
  private readonly nodes: NodeRecord[] = [];
  private readonly usedNames = new Set<string>();
  private counter = 0;

  constructor(readonly graphName: string) {}

  private uniqueName(base: string): string {
    let name = base;
    while (this.usedNames.has(name)) name = `${base}_${++this.counter}`;
    this.usedNames.add(name);
    return name;
  }

  /** Declares a graph input; returns its name for use as a node input. */
  input(name: string, type: ElementType, dims: readonly Dim[]): string {
    if (this.usedNames.has(name)) throw new Error(`duplicate value name ${name}`);
    this.usedNames.add(name);
    this.inputs.push({ name, type, dims });
    return name;
  }

  /** Declares a graph output; some node must produce a value of exactly this name. */
  output(name: string, type: ElementType, dims: readonly Dim[]): void {
    this.outputs.push({ name, type, dims });
  }

  /** Adds a weight or constant; returns its (unique) name. */
  initializer(baseName: string, tensor: TensorData): string {
    const name = this.uniqueName(baseName);
    this.initializers.push({ name, tensor });
    return name;
  }

  /**
   * Adds a checkpoint weight as an initializer named exactly `name` (its diffusers module path, so
   * parity checks and LoRA merges match by name); its values are read when the model is written.
   */
  weight(name: string, source: ModelWeights, transform: WeightTransform = {}): string {
    const shape = source.shape(name);
    if (shape === undefined) throw new Error(`the checkpoint has no weight ${name}`);
    let dims = [...shape];
    if (transform.transpose) {
      if (dims.length !== 2) throw new Error(`weight ${name}: only a 2-D weight can be transposed, it is [${dims.join(", ")}]`);
      dims = [dims[1], dims[0]];
    }
    if (transform.reshape) {
      if (elementCount(transform.reshape) !== elementCount(dims)) {
        throw new Error(`weight ${name}: [${dims.join(", ")}] cannot be reshaped to [${transform.reshape.join(", ")}]`);
      }
      dims = [...transform.reshape];
    }
    if (this.usedNames.has(name)) throw new Error(`duplicate value name ${name}`);
    this.usedNames.add(name);
    this.weights.push({ name, dims, source, transpose: transform.transpose === true });
    return name;
  }

  /**
   * Adds a node with one output and returns that output's name. Pass `outputName` to give the
   * value a fixed name (a graph output), otherwise one is made from the op type; `domain` for
   * contrib operators ("com.microsoft").
   */
  node(
    opType: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, AttributeValue>> = {},
    outputName?: string,
    domain = "",
  ): string {
    const output = outputName ?? this.uniqueName(`${opType.toLowerCase()}_out`);
    if (outputName !== undefined) {
      if (this.usedNames.has(outputName)) throw new Error(`duplicate value name ${outputName}`);
      this.usedNames.add(outputName);
    }
    const name = `${opType}_${this.nodes.length}`;
    this.nodes.push({ opType, name, inputs, outputs: [output], attributes, domain });
    return output;
  }

  /** Adds a node with several outputs (Split) and returns their names in order. */
  nodeOutputs(
    opType: string,
    inputs: readonly string[],
    outputCount: number,
    attributes: Readonly<Record<string, AttributeValue>> = {},
    domain = "",
  ): string[] {
    const outputs = Array.from({ length: outputCount }, () => this.uniqueName(`${opType.toLowerCase()}_out`));
    const name = `${opType}_${this.nodes.length}`;
    this.nodes.push({ opType, name, inputs, outputs, attributes, domain });
    return outputs;
  }

  private checkGraph(): void {
    const produced = new Set<string>([
      ...this.inputs.map((v) => v.name),
      ...this.initializers.map((v) => v.name),
      ...this.weights.map((v) => v.name),
    ]);
    for (const node of this.nodes) {
      for (const input of node.inputs) {
        if (input !== "" && !produced.has(input)) throw new Error(`${node.name}: input ${input} is not defined before use`);
      }
      for (const output of node.outputs) produced.add(output);
    }
    for (const output of this.outputs) {
      if (!produced.has(output.name)) throw new Error(`graph output ${output.name} is produced by no node`);
    }
  }

  private modelProto(
    options: { opsetVersion: number; producerName: string; producerVersion?: string },
    initializer: onnxProto.onnx.ITensorProto[],
  ): onnxProto.onnx.IModelProto {
    const opsetImport = [{ domain: "", version: options.opsetVersion }];
    if (this.nodes.some((node) => node.domain === MICROSOFT_DOMAIN)) opsetImport.push({ domain: MICROSOFT_DOMAIN, version: 1 });
    return {
      irVersion: 8,
      producerName: options.producerName,
      producerVersion: options.producerVersion ?? "",
      opsetImport,
      graph: {
        name: this.graphName,
        node: this.nodes.map((node) => ({
          name: node.name,
          opType: node.opType,
          domain: node.domain,
          input: [...node.inputs],
          output: [...node.outputs],
          attribute: Object.entries(node.attributes).map(([name, value]) => toAttributeProto(name, value)),
        })),
        initializer,
        input: this.inputs.map(toValueInfoProto),
        output: this.outputs.map(toValueInfoProto),
      },
    };
  }

  /**
   * Writes `dir/model.onnx` and its external data file, reading each checkpoint weight when its turn
   * comes: peak memory is the graph plus one tensor. Weights over `inlineMaxBytes` start at a multiple
   * of `alignment` in the external file; constants made with `initializer` stay inline.
   */
  async writeModel(dir: string, options: WriteModelOptions): Promise<void> {
    this.checkGraph();
    const alignment = options.alignment ?? 65_536;
    const inlineMaxBytes = options.inlineMaxBytes ?? 1024;
    await mkdir(dir, { recursive: true });
    const totalBytes = this.weights.reduce((sum, weight) => sum + elementCount(weight.dims) * 4, 0);
    const initializers: onnxProto.onnx.ITensorProto[] = this.initializers.map(({ name, tensor }) => ({
      name,
      dims: [...tensor.dims],
      dataType: DATA_TYPE[tensor.type],
      rawData: tensor.bytes,
    }));
    const handle = await open(path.join(dir, options.externalDataFile), "w");
    try {
      let fileLength = 0;
      let written = 0;
      for (const weight of this.weights) {
        options.signal?.throwIfAborted();
        const values = await readWeight(weight);
        const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
        const base = { name: weight.name, dims: [...weight.dims], dataType: DATA_TYPE.float32 };
        if (bytes.length <= inlineMaxBytes) {
          // protobufjs keeps a reference: copy, so the tensor's buffer is not pinned by a view of a larger one.
          initializers.push({ ...base, rawData: toLittleEndian(values) });
        } else {
          const offset = Math.ceil(fileLength / alignment) * alignment;
          await writeAll(handle, toLittleEndian(values), offset);
          fileLength = offset + bytes.length;
          initializers.push({
            ...base,
            dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
            externalData: [
              { key: "location", value: options.externalDataFile },
              { key: "offset", value: String(offset) },
              { key: "length", value: String(bytes.length) },
            ],
          });
        }
        written += bytes.length;
        options.onProgress?.(written, totalBytes);
      }
    } finally {
      await handle.close();
    }
    const proto = this.modelProto(options, initializers);
    await writeFile(path.join(dir, "model.onnx"), onnx.ModelProto.encode(onnx.ModelProto.create(proto)).finish());
  }

  build(options: BuildOptions): BuiltModel {
    if (this.weights.length > 0) throw new Error("a graph with checkpoint weights is written with writeModel, not build");
    this.checkGraph();

    const externalChunks: Uint8Array[] = [];
    let externalLength = 0;
    const initializerProtos = this.initializers.map(({ name, tensor }): onnxProto.onnx.ITensorProto => {
      const expectedBytes = elementCount(tensor.dims) * BYTES_PER_ELEMENT[tensor.type];
      if (tensor.bytes.length !== expectedBytes) throw new Error(`initializer ${name}: ${tensor.bytes.length} bytes, expected ${expectedBytes}`);
      const base = { name, dims: [...tensor.dims], dataType: DATA_TYPE[tensor.type] };
      const external = options.externalData;
      if (external === undefined || tensor.bytes.length < external.minBytes) return { ...base, rawData: tensor.bytes };
      const offset = externalLength;
      externalChunks.push(tensor.bytes);
      externalLength += tensor.bytes.length;
      return {
        ...base,
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: "location", value: external.location },
          { key: "offset", value: String(offset) },
          { key: "length", value: String(tensor.bytes.length) },
        ],
      };
    });

    const model = this.modelProto(options, initializerProtos);
    const bytes = onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();

    let externalData: Uint8Array | null = null;
    if (externalChunks.length > 0) {
      externalData = new Uint8Array(externalLength);
      let offset = 0;
      for (const chunk of externalChunks) {
        externalData.set(chunk, offset);
        offset += chunk.length;
      }
    }
    return { model: bytes, externalData };
  }
}

async function readWeight(weight: LazyWeight): Promise<Float32Array> {
  const values = await weight.source.read(weight.name);
  const expected = elementCount(weight.dims);
  if (values.length !== expected) throw new Error(`weight ${weight.name}: read ${values.length} values, expected ${expected}`);
  if (!weight.transpose) return values;
  const [columns, rows] = weight.dims; // written dims: [in, out]; the source is [out, in]
  const transposed = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < columns; c++) transposed[c * rows + r] = values[r * columns + c];
  }
  return transposed;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** raw_data is little-endian whatever the host is. */
function toLittleEndian(values: Float32Array): Uint8Array {
  const bytes = new Uint8Array(values.byteLength);
  if (LITTLE_ENDIAN_HOST) {
    bytes.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    return bytes;
  }
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  return bytes;
}

async function writeAll(handle: import("node:fs/promises").FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}
