/**
 * The .safetensors reader: a JSON header naming each tensor's dtype, shape and byte range, then the raw bytes.
 * Only the header is read at open; each tensor's bytes are read when asked, so a 4 GB file costs its header.
 */
import { open, type FileHandle } from "node:fs/promises";
import { CheckpointFileHandle } from "./checkpoint-file-handle.ts";
import { CheckpointError, type CheckpointDtype, type CheckpointFile, type CheckpointTensor } from "./checkpoint-tensor.ts";
import { DTYPE_BYTES, decodeToFloat32, elementCount, readFileRange } from "./tensor-bytes.ts";

const DTYPES = Object.keys(DTYPE_BYTES) as CheckpointDtype[];

/** safetensors' own limit on the header (the Rust crate refuses larger ones): a bigger length is a damaged file. */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

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
    const bytes = await this.owner.readRange(this.name, this.position, this.byteLength);
    return decodeToFloat32(this.dtype, bytes);
  }
}

class SafetensorsFile extends CheckpointFileHandle implements CheckpointFile {
  readonly format = "safetensors";
  readonly tensors = new Map<string, CheckpointTensor>();
  metadata: Readonly<Record<string, string>> = {};
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
