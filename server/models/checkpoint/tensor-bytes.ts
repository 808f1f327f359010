/**
 * A checkpoint tensor's bytes, whatever the file format: reading one byte range of a file exactly, and converting
 * a little-endian buffer of any CheckpointDtype to float32. The .safetensors, .ckpt and zip readers share these.
 */
import type { FileHandle } from "node:fs/promises";
import os from "node:os";
import { CheckpointError, type CheckpointDtype } from "./checkpoint-tensor.ts";

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
