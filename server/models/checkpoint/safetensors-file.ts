/**
 * The .safetensors reader: a JSON header naming each tensor's dtype, shape and byte range, then the raw bytes.
 * Only the header is read at open; each tensor's bytes are read when asked, so a 4 GB file costs its header.
 *
 * This file also holds what every checkpoint reader needs: reading one byte range of a file exactly, and
 * converting a little-endian buffer of any CheckpointDtype to float32 (the .ckpt reader imports both).
 */
import { open, type FileHandle } from "node:fs/promises";
import os from "node:os";
import { CheckpointError, type CheckpointDtype, type CheckpointFile, type CheckpointTensor } from "./checkpoint-tensor.ts";

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<CheckpointDtype, number>> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

const DTYPES = Object.keys(DTYPE_BYTES) as CheckpointDtype[];

/** safetensors' own limit on the header (the Rust crate refuses larger ones): a bigger length is a damaged file. */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

const littleEndianHost = os.endianness() === "LE";

/**
 * Reads exactly `length` bytes at `position` into a fresh buffer (its own ArrayBuffer, so typed-array views of
 * it are aligned). A short read means the file shrank or was truncated since its size was checked.
 */
export async function readFileRange(file: string, handle: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(bytes, done, length - done, position + done);
    if (bytesRead === 0) {
      throw new CheckpointError(file, `truncated: wanted ${length} bytes at offset ${position}, the file ends after ${done}`);
    }
    done += bytesRead;
  }
  return bytes;
}

/** Bit patterns of float32 for every float16 pattern: one table lookup per element, exact for subnormals and NaN payloads. */
let halfToFloatTable: Uint32Array | undefined;

function halfToFloatBits(half: number): number {
  const sign = (half & 0x8000) << 16;
  const exponent = (half >>> 10) & 0x1f;
  const mantissa = half & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0; // Inf, NaN (payload kept)
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  // A subnormal half is a normal float: shift the mantissa up until its leading 1 is the implicit bit.
  let floatExponent = 113;
  let shifted = mantissa;
  while ((shifted & 0x400) === 0) {
    shifted <<= 1;
    floatExponent--;
  }
  return (sign | (floatExponent << 23) | ((shifted & 0x3ff) << 13)) >>> 0;
}

function halfTable(): Uint32Array {
  if (!halfToFloatTable) {
    halfToFloatTable = new Uint32Array(65536);
    for (let half = 0; half < 65536; half++) halfToFloatTable[half] = halfToFloatBits(half);
  }
  return halfToFloatTable;
}

/** Reverses each element's bytes in place, so a little-endian file reads right on a big-endian host. */
function toHostOrder(bytes: Uint8Array, elementBytes: number): void {
  if (littleEndianHost || elementBytes === 1) return;
  for (let start = 0; start < bytes.length; start += elementBytes) bytes.subarray(start, start + elementBytes).reverse();
}

/**
 * Converts a little-endian buffer of `dtype` elements to float32: F16 and BF16 exactly, F64 rounded to nearest,
 * integers as their values (I64 beyond 2^24 rounds, as any float32 does), BOOL as 0 or 1. Fastest on a buffer of
 * its own (as readFileRange gives); on a big-endian host `bytes` is reordered in place.
 */
export function decodeToFloat32(dtype: CheckpointDtype, bytes: Uint8Array): Float32Array {
  const elementBytes = DTYPE_BYTES[dtype];
  const count = bytes.length / elementBytes;
  toHostOrder(bytes, elementBytes);
  // Typed-array views need an aligned start: use the buffer itself when it is exactly these bytes, else a copy.
  const buffer = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer;
  switch (dtype) {
    case "F32":
      return new Float32Array(buffer);
    case "F16": {
      const table = halfTable();
      const halves = new Uint16Array(buffer);
      const out = new Uint32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[halves[i]];
      return new Float32Array(out.buffer);
    }
    case "BF16": {
      // bfloat16 is the top half of a float32: shifting the bits back up is the exact value.
      const halves = new Uint16Array(buffer);
      const out = new Uint32Array(count);
      for (let i = 0; i < count; i++) out[i] = halves[i] << 16;
      return new Float32Array(out.buffer);
    }
    case "I64": {
      // Two 32-bit words per value (low word first on a little-endian host): exact up to 2^53, then float32 rounds it.
      const words = new Uint32Array(buffer);
      const signedWords = new Int32Array(buffer);
      const [low, high] = littleEndianHost ? [0, 1] : [1, 0];
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = signedWords[2 * i + high] * 4294967296 + words[2 * i + low];
      return out;
    }
    case "BOOL": {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = bytes[i] === 0 ? 0 : 1;
      return out;
    }
    default: {
      // TypedArray.set converts element by element (F64 rounds to nearest even), without a JavaScript loop.
      const out = new Float32Array(count);
      out.set(integerOrDoubleView(dtype, buffer));
      return out;
    }
  }
}

function integerOrDoubleView(dtype: "F64" | "I32" | "I16" | "I8" | "U8", buffer: ArrayBufferLike): ArrayLike<number> {
  switch (dtype) {
    case "F64":
      return new Float64Array(buffer);
    case "I32":
      return new Int32Array(buffer);
    case "I16":
      return new Int16Array(buffer);
    case "I8":
      return new Int8Array(buffer);
    case "U8":
      return new Uint8Array(buffer);
  }
}

/** Product of a shape's dimensions, refused when it is past 2^53 (no real tensor is). */
export function elementCount(file: string, name: string, shape: readonly number[]): number {
  let count = 1;
  for (const dimension of shape) count *= dimension;
  if (!Number.isSafeInteger(count)) {
    throw new CheckpointError(file, `tensor "${name}" has shape [${shape.join(", ")}], more elements than any real tensor`);
  }
  return count;
}

/** One tensor whose bytes are one contiguous range of the file. */
class FileRangeTensor implements CheckpointTensor {
  constructor(
    private readonly owner: SafetensorsFile,
    readonly name: string,
    readonly dtype: CheckpointDtype,
    readonly shape: readonly number[],
    private readonly position: number,
    private readonly byteLength: number,
  ) {}

  async readFloat32(): Promise<Float32Array> {
    const bytes = await readFileRange(this.owner.path, this.owner.openHandle(this.name), this.position, this.byteLength);
    return decodeToFloat32(this.dtype, bytes);
  }
}

class SafetensorsFile implements CheckpointFile {
  readonly format = "safetensors";
  readonly tensors = new Map<string, CheckpointTensor>();
  metadata: Readonly<Record<string, string>> = {};
  private handle: FileHandle | undefined;

  constructor(
    readonly path: string,
    handle: FileHandle,
  ) {
    this.handle = handle;
  }

  openHandle(tensorName: string): FileHandle {
    if (!this.handle) throw new CheckpointError(this.path, `tensor "${tensorName}" was read after the file was closed`);
    return this.handle;
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }
}

interface HeaderEntry {
  name: string;
  dtype: CheckpointDtype;
  shape: number[];
  begin: number;
  end: number;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function parseMetadata(file: string, value: unknown): Record<string, string> {
  if (!isPlainObject(value)) throw new CheckpointError(file, `"__metadata__" is ${describe(value)}, not an object of strings`);
  const metadata: Record<string, string> = {};
  for (const [key, text] of Object.entries(value)) {
    if (typeof text !== "string") {
      throw new CheckpointError(file, `"__metadata__" entry "${key}" is ${describe(text)}, not a string`);
    }
    metadata[key] = text;
  }
  return metadata;
}

function parseEntry(file: string, name: string, value: unknown): HeaderEntry {
  if (!isPlainObject(value)) throw new CheckpointError(file, `tensor "${name}" is described by ${describe(value)}, not an object`);
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== "string" || !(DTYPES as string[]).includes(dtype)) {
    throw new CheckpointError(file, `tensor "${name}" has dtype ${describe(dtype)}; the dtypes read are ${DTYPES.join(", ")}`);
  }
  if (!Array.isArray(shape) || !shape.every((dimension) => Number.isSafeInteger(dimension) && dimension >= 0)) {
    throw new CheckpointError(file, `tensor "${name}" has shape ${describe(shape)}, not a list of non-negative integers`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((offset) => Number.isSafeInteger(offset) && offset >= 0) ||
    offsets[0] > offsets[1]
  ) {
    throw new CheckpointError(
      file,
      `tensor "${name}" has data_offsets ${describe(offsets)}, not two non-negative integers [begin, end] with begin <= end`,
    );
  }
  return { name, dtype: dtype as CheckpointDtype, shape: shape as number[], begin: offsets[0], end: offsets[1] };
}

/** Reads and checks the header: every tensor's range inside the file, of the right length, none overlapping. */
async function readHeader(file: string, handle: FileHandle, fileSize: number) {
  if (fileSize < 8) {
    throw new CheckpointError(file, `${fileSize} bytes is too short for a safetensors file (it starts with an 8-byte header length)`);
  }
  const lengthBytes = await readFileRange(file, handle, 0, 8);
  const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
  if (headerLength > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) {
    throw new CheckpointError(
      file,
      `header length ${headerLength} bytes is over safetensors' limit of ${SAFETENSORS_MAX_HEADER_BYTES} bytes: not a safetensors file, or a damaged one`,
    );
  }
  const headerBytes = Number(headerLength);
  if (8 + headerBytes > fileSize) {
    throw new CheckpointError(
      file,
      `truncated: the header length says ${headerBytes} bytes of header but the file has only ${fileSize - 8} after the length`,
    );
  }
  const text = new TextDecoder().decode(await readFileRange(file, handle, 8, headerBytes));
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    throw new CheckpointError(file, `the header is not JSON (${(error as Error).message.split("\n")[0]})`);
  }
  if (!isPlainObject(header)) throw new CheckpointError(file, `the header is ${describe(header)}, not a JSON object`);

  let metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") metadata = parseMetadata(file, value);
    else entries.push(parseEntry(file, name, value));
  }

  const dataStart = 8 + headerBytes;
  const dataBytes = fileSize - dataStart;
  const last = entries.reduce<HeaderEntry | undefined>((far, entry) => (!far || entry.end > far.end ? entry : far), undefined);
  if (last && last.end > dataBytes) {
    throw new CheckpointError(
      file,
      `truncated: the header needs ${dataStart + last.end} bytes (tensor "${last.name}" ends at data offset ${last.end}) but the file has ${fileSize}`,
    );
  }
  for (const entry of entries) {
    const expected = elementCount(file, entry.name, entry.shape) * DTYPE_BYTES[entry.dtype];
    if (entry.end - entry.begin !== expected) {
      throw new CheckpointError(
        file,
        `tensor "${entry.name}" (${entry.dtype}, shape [${entry.shape.join(", ")}]) needs ${expected} bytes but its data_offsets span ${entry.end - entry.begin}`,
      );
    }
  }
  const byStart = entries.filter((entry) => entry.end > entry.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < byStart.length; i++) {
    const [before, after] = [byStart[i - 1], byStart[i]];
    if (after.begin < before.end) {
      throw new CheckpointError(
        file,
        `tensors "${before.name}" [${before.begin}, ${before.end}) and "${after.name}" [${after.begin}, ${after.end}) overlap`,
      );
    }
  }
  return { metadata, entries, dataStart };
}

/** Opens a .safetensors file: reads and checks its header now, each tensor's bytes when it is read. */
export async function openSafetensors(file: string): Promise<CheckpointFile> {
  const handle = await open(file, "r");
  try {
    const { size } = await handle.stat();
    const { metadata, entries, dataStart } = await readHeader(file, handle, size);
    const checkpoint = new SafetensorsFile(file, handle);
    checkpoint.metadata = metadata;
    for (const entry of entries) {
      checkpoint.tensors.set(
        entry.name,
        new FileRangeTensor(checkpoint, entry.name, entry.dtype, entry.shape, dataStart + entry.begin, entry.end - entry.begin),
      );
    }
    return checkpoint;
  } catch (error) {
    await handle.close();
    throw error;
  }
}
