/**
 * Which external data files an ONNX model reads its tensors from, and how many bytes of each it needs.
 * Exports over 2 GB (and optimum's UNet at any size) keep weights beside the graph, in model.onnx_data or
 * weights.pb; a folder without them, or with a truncated one, fails only when onnxruntime opens it.
 */
import { type ProtobufField, ProtobufFileReader, ProtobufFormatError } from "./protobuf-file-reader.ts";

export interface ExternalDataFile {
  /** As the graph names it: relative to the folder of the .onnx file. */
  readonly location: string;
  readonly tensors: number;
  /** The end of the furthest tensor in it; undefined when a tensor's size cannot be worked out. */
  readonly bytesNeeded: number | undefined;
}

// Field numbers from onnx/onnx.proto3.
const MODEL_GRAPH = 7;
const GRAPH_NODE = 1;
const GRAPH_INITIALIZER = 5;
const GRAPH_SPARSE_INITIALIZER = 15;
const NODE_ATTRIBUTE = 5;
const ATTRIBUTE_TENSOR = 5;
const ATTRIBUTE_GRAPH = 6;
const ATTRIBUTE_TENSORS = 10;
const ATTRIBUTE_GRAPHS = 11;
const ATTRIBUTE_SPARSE_TENSOR = 22;
const ATTRIBUTE_SPARSE_TENSORS = 23;
const SPARSE_VALUES = 1;
const SPARSE_INDICES = 2;
const TENSOR_DIMS = 1;
const TENSOR_DATA_TYPE = 2;
const TENSOR_NAME = 8;
const TENSOR_EXTERNAL_DATA = 13;
const TENSOR_DATA_LOCATION = 14;
const DATA_LOCATION_EXTERNAL = 1;
/** Bytes per element by TensorProto.DataType (strings have no fixed size). */
const ELEMENT_BYTES: Readonly<Record<number, number>> = {
  1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2, 17: 1, 18: 1, 19: 1, 20: 1,
};
/** Subgraphs nest (If, Loop); a bound keeps a malformed file from recursing without end. */
const MAX_GRAPH_DEPTH = 16;

interface ExternalTensor {
  readonly name: string;
  readonly location: string | undefined;
  readonly end: number | undefined;
}

/** The external data files `onnxFile` references, every tensor of every graph and subgraph counted. */
export async function externalDataOf(onnxFile: string): Promise<ExternalDataFile[]> {
  const reader = await ProtobufFileReader.open(onnxFile);
  try {
    const tensors: ExternalTensor[] = [];
    let graphs = 0;
    for await (const field of reader.fields(0, reader.size)) {
      if (field.number === MODEL_GRAPH && field.wireType === 2) {
        graphs++;
        await collectGraph(reader, field, tensors, 0);
      }
    }
    if (graphs === 0) throw new ProtobufFormatError("no graph in it");
    const byLocation = new Map<string, { tensors: number; bytesNeeded: number | undefined }>();
    for (const tensor of tensors) {
      if (tensor.location === undefined) throw new ProtobufFormatError(`tensor "${tensor.name}" is stored externally but names no location`);
      const entry = byLocation.get(tensor.location) ?? { tensors: 0, bytesNeeded: 0 };
      entry.tensors++;
      entry.bytesNeeded = entry.bytesNeeded === undefined || tensor.end === undefined ? undefined : Math.max(entry.bytesNeeded, tensor.end);
      byLocation.set(tensor.location, entry);
    }
    return [...byLocation].map(([location, entry]) => ({ location, ...entry }));
  } finally {
    await reader.close();
  }
}

async function collectGraph(reader: ProtobufFileReader, graph: ProtobufField, into: ExternalTensor[], depth: number): Promise<void> {
  if (depth >= MAX_GRAPH_DEPTH) throw new ProtobufFormatError(`subgraphs nested deeper than ${MAX_GRAPH_DEPTH}`);
  for await (const field of reader.fields(graph.start, graph.end)) {
    if (field.wireType !== 2) continue;
    if (field.number === GRAPH_INITIALIZER) await collectTensor(reader, field, into);
    else if (field.number === GRAPH_SPARSE_INITIALIZER) await collectSparseTensor(reader, field, into);
    else if (field.number === GRAPH_NODE) {
      for await (const nodeField of reader.fields(field.start, field.end)) {
        if (nodeField.number === NODE_ATTRIBUTE && nodeField.wireType === 2) await collectAttribute(reader, nodeField, into, depth);
      }
    }
  }
}

/** Constant nodes carry tensors in attributes, and onnx moves those to external data too. */
async function collectAttribute(reader: ProtobufFileReader, attribute: ProtobufField, into: ExternalTensor[], depth: number): Promise<void> {
  for await (const field of reader.fields(attribute.start, attribute.end)) {
    if (field.wireType !== 2) continue;
    if (field.number === ATTRIBUTE_TENSOR || field.number === ATTRIBUTE_TENSORS) await collectTensor(reader, field, into);
    else if (field.number === ATTRIBUTE_SPARSE_TENSOR || field.number === ATTRIBUTE_SPARSE_TENSORS) await collectSparseTensor(reader, field, into);
    else if (field.number === ATTRIBUTE_GRAPH || field.number === ATTRIBUTE_GRAPHS) await collectGraph(reader, field, into, depth + 1);
  }
}

async function collectSparseTensor(reader: ProtobufFileReader, sparse: ProtobufField, into: ExternalTensor[]): Promise<void> {
  for await (const field of reader.fields(sparse.start, sparse.end)) {
    if (field.wireType === 2 && (field.number === SPARSE_VALUES || field.number === SPARSE_INDICES)) await collectTensor(reader, field, into);
  }
}

async function collectTensor(reader: ProtobufFileReader, tensor: ProtobufField, into: ExternalTensor[]): Promise<void> {
  const dims: number[] = [];
  let dataType = 0;
  let name = "";
  let external = false;
  const entries = new Map<string, string>();
  for await (const field of reader.fields(tensor.start, tensor.end)) {
    if (field.number === TENSOR_DIMS) {
      if (field.wireType === 0) dims.push(field.varint);
      else if (field.wireType === 2) dims.push(...(await reader.packedVarints(field)));
    } else if (field.number === TENSOR_DATA_TYPE && field.wireType === 0) {
      dataType = field.varint;
    } else if (field.number === TENSOR_NAME && field.wireType === 2) {
      name = await reader.text(field);
    } else if (field.number === TENSOR_DATA_LOCATION && field.wireType === 0) {
      external = field.varint === DATA_LOCATION_EXTERNAL;
    } else if (field.number === TENSOR_EXTERNAL_DATA && field.wireType === 2) {
      let key = "";
      let value = "";
      for await (const entry of reader.fields(field.start, field.end)) {
        if (entry.wireType !== 2) continue;
        if (entry.number === 1) key = await reader.text(entry);
        else if (entry.number === 2) value = await reader.text(entry);
      }
      entries.set(key, value);
    }
  }
  if (!external) return;
  const offset = Number(entries.get("offset") ?? 0);
  const elementBytes = ELEMENT_BYTES[dataType];
  const length = entries.has("length")
    ? Number(entries.get("length"))
    : elementBytes === undefined
      ? undefined
      : dims.reduce((product, dim) => product * dim, 1) * elementBytes;
  const end = length === undefined || !Number.isFinite(offset) || !Number.isFinite(length) ? undefined : offset + length;
  into.push({ name, location: entries.get("location"), end });
}
