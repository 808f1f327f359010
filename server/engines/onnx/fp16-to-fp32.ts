/**
 * An fp16 ONNX export rewritten as fp32, the inverse of onnxconverter-common's convert_float_to_float16 (what
 * optimum's and diffusers' fp16 exports run): every FLOAT16 initializer, Constant / ConstantOfShape tensor and
 * sparse tensor becomes FLOAT, every Cast `to` FLOAT16 (and a Random* / EyeLike `dtype` FLOAT16) becomes FLOAT,
 * and every FLOAT16 element type of the inputs, outputs and value_info becomes FLOAT, in subgraphs too. The
 * Casts that onnxconverter-common inserted (around graph inputs and outputs with keep_io_types, around its
 * block-listed ops, after each fp16 weight in some exports) become float → float, which onnxruntime's
 * CastElimination drops at load. fp16 → fp32 is exact, so the weights are the export's own values.
 *
 * Why: onnxruntime's CPU provider has almost no fp16 kernels; an fp16 graph runs wrapped in casts, 20–50 %
 * slower a step than the fp32 export (README, "Real-size models").
 *
 * Memory: a real UNet is 1.7 GB of fp16 weights. The graph is walked field by field from the file (never
 * parsed whole), one weight at a time is read, widened and appended to the output's external data file, so
 * the process holds the graph's structure plus one tensor in both precisions, never a whole model.
 */
import { type FileHandle, open } from "node:fs/promises";
import path from "node:path";
import onnxProto from "onnx-proto";
import { type ProtobufField, ProtobufFileReader, ProtobufFormatError } from "../../models/protobuf-file-reader.ts";
import { fromFloat16Bits } from "./float16.ts";

const { onnx } = onnxProto;
type Tensor = onnxProto.onnx.ITensorProto;
type Graph = onnxProto.onnx.IGraphProto;
type Node = onnxProto.onnx.INodeProto;
type ValueInfo = onnxProto.onnx.IValueInfoProto;
type TypeProto = onnxProto.onnx.ITypeProto;
type SparseTensor = onnxProto.onnx.ISparseTensorProto;

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const FLOAT16 = onnx.TensorProto.DataType.FLOAT16;
const EXTERNAL = onnx.TensorProto.DataLocation.EXTERNAL;

// Field numbers from onnx/onnx.proto3.
const MODEL_GRAPH = 7;
const GRAPH_NODE = 1;
const GRAPH_INITIALIZER = 5;
const GRAPH_INPUT = 11;
const GRAPH_OUTPUT = 12;
const GRAPH_VALUE_INFO = 13;
const GRAPH_SPARSE_INITIALIZER = 15;
const TENSOR_DATA_TYPE = 2;
const VALUE_INFO_TYPE = 2;
const TYPE_TENSOR = 1;
const TYPE_TENSOR_ELEM_TYPE = 1;

/** Weights this small stay inside the graph, as the exporters keep them. */
const INLINE_BELOW_BYTES = 1024;
/** Each tensor in the output's data file starts on this boundary. */
const DATA_ALIGNMENT = 64;
/** Ops (default domain) whose attribute names the element type they make. */
const TYPE_ATTRIBUTES: Readonly<Record<string, string>> = {
  Cast: "to",
  EyeLike: "dtype",
  RandomNormal: "dtype",
  RandomUniform: "dtype",
  RandomNormalLike: "dtype",
  RandomUniformLike: "dtype",
  Multinomial: "dtype",
  Bernoulli: "dtype",
};
const MAX_GRAPH_DEPTH = 16;

export interface Fp16ToFp32Result {
  /** FLOAT16 tensors widened (initializers, constants, sparse values). */
  readonly tensors: number;
  /** Their elements. */
  readonly elements: number;
  /** Cast `to` and `dtype` attributes changed from FLOAT16 to FLOAT. */
  readonly typeAttributes: number;
  /** Bytes of the output's external data file. */
  readonly dataBytes: number;
}

/** 65,536 fp16 bit patterns → their exact fp32 values: one lookup an element. */
let widenTable: Float32Array | undefined;
function widen(bits: Uint16Array): Float32Array {
  if (!widenTable) {
    widenTable = new Float32Array(65536);
    for (let b = 0; b < 65536; b++) widenTable[b] = fromFloat16Bits(b);
  }
  const table = widenTable;
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}

function toNumber(value: number | { toNumber(): number } | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === "number" ? value : value.toNumber();
}

function elementCount(tensor: Tensor): number {
  return (tensor.dims ?? []).reduce<number>((count, dim) => count * toNumber(dim), 1);
}

/**
 * Rewrites `sourceFile` (an ONNX model, weights inline or in external data files beside it) as fp32 at
 * `targetFile`, with every weight of 1 KB or more in `<targetFile name>_data` beside it. Tensors that are not
 * FLOAT16 are copied as they are (external ones moved into the new data file).
 */
export async function convertFp16ToFp32(sourceFile: string, targetFile: string): Promise<Fp16ToFp32Result> {
  const dataName = `${path.basename(targetFile)}_data`;
  const converter = new Converter(sourceFile, await open(path.join(path.dirname(targetFile), dataName), "w"), dataName);
  try {
    const parts = await converter.model();
    const output = await open(targetFile, "w");
    try {
      for (const part of parts) await output.write(part);
      await output.sync();
    } finally {
      await output.close();
    }
    await converter.finishData();
    return converter.result();
  } finally {
    await converter.close();
  }
}

class Converter {
  #reader: ProtobufFileReader | undefined;
  #source: FileHandle | undefined;
  readonly #externalSources = new Map<string, FileHandle>();
  #dataBytes = 0;
  #tensors = 0;
  #elements = 0;
  #typeAttributes = 0;

  constructor(
    private readonly sourceFile: string,
    private readonly data: FileHandle,
    private readonly dataName: string,
  ) {}

  result(): Fp16ToFp32Result {
    return { tensors: this.#tensors, elements: this.#elements, typeAttributes: this.#typeAttributes, dataBytes: this.#dataBytes };
  }

  /** The output model's bytes, in pieces: every top-level field as it was but the graph, which is rewritten. */
  async model(): Promise<Buffer[]> {
    this.#reader = await ProtobufFileReader.open(this.sourceFile);
    this.#source = await open(this.sourceFile, "r");
    const parts: Buffer[] = [];
    let graphs = 0;
    for await (const field of this.#reader.fields(0, this.#reader.size)) {
      if (field.number === MODEL_GRAPH && field.wireType === 2) {
        graphs++;
        parts.push(lengthDelimited(MODEL_GRAPH, Buffer.concat(await this.#graphFromFile(field))));
      } else {
        parts.push(await this.#rawField(field));
      }
    }
    if (graphs === 0) throw new ProtobufFormatError("no graph in it");
    return parts;
  }

  async finishData(): Promise<void> {
    await this.data.sync();
  }

  async close(): Promise<void> {
    await this.#reader?.close();
    await this.#source?.close();
    await this.data.close().catch(() => {});
    for (const handle of this.#externalSources.values()) await handle.close();
  }

  /** The top-level graph, field by field from the file: one node or tensor in memory at a time. */
  async #graphFromFile(graph: ProtobufField): Promise<Buffer[]> {
    const parts: Buffer[] = [];
    for await (const field of this.#reader!.fields(graph.start, graph.end)) {
      if (field.wireType !== 2) {
        parts.push(await this.#rawField(field));
        continue;
      }
      const bytes = await this.#payload(field);
      switch (field.number) {
        case GRAPH_NODE: {
          const node = onnx.NodeProto.decode(bytes);
          await this.#node(node, 0);
          parts.push(lengthDelimited(field.number, onnx.NodeProto.encode(node).finish()));
          break;
        }
        case GRAPH_INITIALIZER: {
          const tensor = await this.#tensor(onnx.TensorProto.decode(bytes), true);
          parts.push(lengthDelimited(field.number, onnx.TensorProto.encode(tensor).finish()));
          break;
        }
        case GRAPH_INPUT:
        case GRAPH_OUTPUT:
        case GRAPH_VALUE_INFO: {
          const value = onnx.ValueInfoProto.decode(bytes);
          widenValueInfo(value);
          parts.push(lengthDelimited(field.number, onnx.ValueInfoProto.encode(value).finish()));
          break;
        }
        case GRAPH_SPARSE_INITIALIZER: {
          const sparse = onnx.SparseTensorProto.decode(bytes);
          await this.#sparse(sparse);
          parts.push(lengthDelimited(field.number, onnx.SparseTensorProto.encode(sparse).finish()));
          break;
        }
        default:
          parts.push(lengthDelimited(field.number, bytes));
      }
    }
    return parts;
  }

  /** A subgraph (If, Loop, Scan bodies): small, rewritten in memory; its large weights go to the data file too. */
  async #graph(graph: Graph, depth: number): Promise<void> {
    if (depth >= MAX_GRAPH_DEPTH) throw new ProtobufFormatError(`subgraphs nested deeper than ${MAX_GRAPH_DEPTH}`);
    for (const node of graph.node ?? []) await this.#node(node, depth + 1);
    graph.initializer = await this.#tensorList(graph.initializer ?? [], true);
    for (const sparse of graph.sparseInitializer ?? []) await this.#sparse(sparse);
    for (const value of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.valueInfo ?? [])]) widenValueInfo(value);
  }

  async #node(node: Node, depth: number): Promise<void> {
    const defaultDomain = !node.domain || node.domain === "ai.onnx";
    const typeAttribute = defaultDomain ? TYPE_ATTRIBUTES[node.opType ?? ""] : undefined;
    for (const attribute of node.attribute ?? []) {
      if (typeAttribute !== undefined && attribute.name === typeAttribute && toNumber(attribute.i) === FLOAT16) {
        attribute.i = FLOAT;
        this.#typeAttributes++;
      }
      // Constant and ConstantOfShape values stay inside the node, as onnxruntime reads them.
      if (attribute.t) attribute.t = await this.#tensor(attribute.t, false);
      if (attribute.tensors?.length) attribute.tensors = await this.#tensorList(attribute.tensors, false);
      if (attribute.sparseTensor) await this.#sparse(attribute.sparseTensor);
      for (const sparse of attribute.sparseTensors ?? []) await this.#sparse(sparse);
      if (attribute.tp) widenType(attribute.tp);
      for (const type of attribute.typeProtos ?? []) widenType(type);
      if (attribute.g) await this.#graph(attribute.g, depth);
      for (const graph of attribute.graphs ?? []) await this.#graph(graph, depth);
    }
  }

  /** One after another: each appends to the data file at the offset the previous one left. */
  async #tensorList(tensors: readonly Tensor[], external: boolean): Promise<Tensor[]> {
    const out: Tensor[] = [];
    for (const tensor of tensors) out.push(await this.#tensor(tensor, external));
    return out;
  }

  async #sparse(sparse: SparseTensor): Promise<void> {
    if (sparse.values) sparse.values = await this.#tensor(sparse.values, false);
    if (sparse.indices) sparse.indices = await this.#tensor(sparse.indices, false);
  }

  /**
   * The tensor in the output: FLOAT16 widened to FLOAT; weights of 1 KB or more (when `external`) in the
   * output's data file, which also takes the source's external tensors of other types.
   */
  async #tensor(tensor: Tensor, external: boolean): Promise<Tensor> {
    const isExternal = tensor.dataLocation === EXTERNAL;
    if (tensor.dataType !== FLOAT16) {
      if (!isExternal) return tensor;
      const bytes = await this.#externalBytes(tensor);
      return this.#place(tensor, tensor.dataType ?? 0, bytes, true);
    }
    const count = elementCount(tensor);
    const bits = new Uint16Array(count);
    if (isExternal) {
      const bytes = await this.#externalBytes(tensor);
      if (bytes.byteLength !== count * 2) throw new ProtobufFormatError(`tensor "${tensor.name}" has ${bytes.byteLength} bytes of data for ${count} float16 values`);
      new Uint8Array(bits.buffer).set(bytes);
    } else if (tensor.rawData && tensor.rawData.length > 0) {
      if (tensor.rawData.length !== count * 2) throw new ProtobufFormatError(`tensor "${tensor.name}" has ${tensor.rawData.length} raw bytes for ${count} float16 values`);
      new Uint8Array(bits.buffer).set(tensor.rawData);
    } else if (tensor.int32Data && tensor.int32Data.length > 0) {
      // onnx stores float16 outside raw_data as one bit pattern per int32 (onnxconverter-common does so for float_data).
      if (tensor.int32Data.length !== count) throw new ProtobufFormatError(`tensor "${tensor.name}" has ${tensor.int32Data.length} int32_data values for ${count} float16 values`);
      for (let i = 0; i < count; i++) bits[i] = tensor.int32Data[i] & 0xffff;
    } else if (count !== 0) {
      throw new ProtobufFormatError(`float16 tensor "${tensor.name}" has no data`);
    }
    const values = widen(bits);
    this.#tensors++;
    this.#elements += count;
    return this.#place(tensor, FLOAT, new Uint8Array(values.buffer, values.byteOffset, values.byteLength), external);
  }

  /** A new TensorProto with `bytes` as its data, inline or appended to the output's data file. */
  async #place(tensor: Tensor, dataType: number, bytes: Uint8Array, external: boolean): Promise<Tensor> {
    const base = { name: tensor.name, docString: tensor.docString, dims: tensor.dims, dataType };
    if (!external || bytes.byteLength < INLINE_BELOW_BYTES) return onnx.TensorProto.create({ ...base, rawData: bytes });
    const offset = Math.ceil(this.#dataBytes / DATA_ALIGNMENT) * DATA_ALIGNMENT;
    let written = 0;
    while (written < bytes.byteLength) {
      const { bytesWritten } = await this.data.write(bytes, written, bytes.byteLength - written, offset + written);
      written += bytesWritten;
    }
    this.#dataBytes = offset + bytes.byteLength;
    return onnx.TensorProto.create({
      ...base,
      dataLocation: EXTERNAL,
      externalData: [
        { key: "location", value: this.dataName },
        { key: "offset", value: String(offset) },
        { key: "length", value: String(bytes.byteLength) },
      ],
    });
  }

  /** An external tensor's bytes from its file beside the source model. */
  async #externalBytes(tensor: Tensor): Promise<Uint8Array> {
    const fields = new Map((tensor.externalData ?? []).map((entry) => [entry.key ?? "", entry.value ?? ""]));
    const location = fields.get("location");
    if (!location) throw new ProtobufFormatError(`tensor "${tensor.name}" is stored externally but names no location`);
    const folder = path.dirname(path.resolve(this.sourceFile));
    const file = path.resolve(folder, location);
    if (path.isAbsolute(location) || !file.startsWith(folder + path.sep)) {
      throw new ProtobufFormatError(`tensor "${tensor.name}" references external data outside its folder ("${location}")`);
    }
    let handle = this.#externalSources.get(file);
    if (!handle) {
      handle = await open(file, "r");
      this.#externalSources.set(file, handle);
    }
    const offset = Number(fields.get("offset") ?? 0);
    const length = fields.has("length") ? Number(fields.get("length")) : (await handle.stat()).size - offset;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new ProtobufFormatError(`tensor "${tensor.name}" has an invalid external offset or length`);
    }
    const bytes = new Uint8Array(length);
    const { bytesRead } = await handle.read(bytes, 0, length, offset);
    if (bytesRead !== length) throw new ProtobufFormatError(`${location} ends inside tensor "${tensor.name}" (needs bytes ${offset}–${offset + length})`);
    return bytes;
  }

  async #payload(field: ProtobufField): Promise<Uint8Array> {
    const bytes = new Uint8Array(field.end - field.start);
    const { bytesRead } = await this.#source!.read(bytes, 0, bytes.byteLength, field.start);
    if (bytesRead !== bytes.byteLength) throw new ProtobufFormatError(`file ends inside field ${field.number} at byte ${field.start}`);
    return bytes;
  }

  /** A field copied as it is: its key, its length for length-delimited ones, its bytes. */
  async #rawField(field: ProtobufField): Promise<Buffer> {
    const payload = await this.#payload(field);
    if (field.wireType === 2) return lengthDelimited(field.number, payload);
    return Buffer.concat([varint(field.number * 8 + field.wireType), payload]);
  }
}

function widenValueInfo(value: ValueInfo): void {
  if (value.type) widenType(value.type);
}

function widenType(type: TypeProto): void {
  if (type.tensorType && type.tensorType.elemType === FLOAT16) type.tensorType.elemType = FLOAT;
  if (type.sparseTensorType && type.sparseTensorType.elemType === FLOAT16) type.sparseTensorType.elemType = FLOAT;
  if (type.sequenceType?.elemType) widenType(type.sequenceType.elemType);
  if (type.optionalType?.elemType) widenType(type.optionalType.elemType);
  if (type.mapType?.valueType) widenType(type.mapType.valueType);
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  while (value >= 0x80) {
    bytes.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

function lengthDelimited(number: number, payload: Uint8Array): Buffer {
  return Buffer.concat([varint(number * 8 + 2), varint(payload.byteLength), payload]);
}

/**
 * Whether a model stores float16: a FLOAT16 initializer, or a FLOAT16 graph input or output. Reads the graph's
 * headers only (weights are skipped by their length), so it costs milliseconds on a multi-gigabyte model.
 */
export async function isFloat16Model(file: string): Promise<boolean> {
  const reader = await ProtobufFileReader.open(file);
  try {
    for await (const field of reader.fields(0, reader.size)) {
      if (field.number !== MODEL_GRAPH || field.wireType !== 2) continue;
      for await (const member of reader.fields(field.start, field.end)) {
        if (member.wireType !== 2) continue;
        if (member.number === GRAPH_INITIALIZER) {
          for await (const tensorField of reader.fields(member.start, member.end)) {
            if (tensorField.number === TENSOR_DATA_TYPE && tensorField.wireType === 0 && tensorField.varint === FLOAT16) return true;
          }
        } else if (member.number === GRAPH_INPUT || member.number === GRAPH_OUTPUT) {
          if ((await elementTypeOf(reader, member)) === FLOAT16) return true;
        }
      }
    }
    return false;
  } finally {
    await reader.close();
  }
}

/** A ValueInfoProto's tensor element type, undefined for other kinds. */
async function elementTypeOf(reader: ProtobufFileReader, valueInfo: ProtobufField): Promise<number | undefined> {
  for await (const field of reader.fields(valueInfo.start, valueInfo.end)) {
    if (field.number !== VALUE_INFO_TYPE || field.wireType !== 2) continue;
    for await (const kind of reader.fields(field.start, field.end)) {
      if (kind.number !== TYPE_TENSOR || kind.wireType !== 2) continue;
      for await (const member of reader.fields(kind.start, kind.end)) {
        if (member.number === TYPE_TENSOR_ELEM_TYPE && member.wireType === 0) return member.varint;
      }
    }
  }
  return undefined;
}
