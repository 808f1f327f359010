// A .safetensors file written one tensor at a time, as the safetensors library lays it out (the JSON header padded
// with spaces to a multiple of 8 bytes, then each tensor's little-endian bytes in header order): the random
// full-size checkpoint and LoRA of the benches are gigabytes, so no tensor is drawn before its turn.
import { mkdir, open, rename, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

export interface StreamedTensor {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** The tensor's size in the file. */
  readonly byteLength: number;
  /** Its little-endian bytes, made when the tensor is written. */
  bytes(): Uint8Array;
}

/** The header of `tensors` in file order (the caller sorts them), `__metadata__` first when given. */
export function safetensorsHeader(tensors: readonly StreamedTensor[], metadata?: Readonly<Record<string, string>>): { header: Uint8Array; dataBytes: number } {
  const fields: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const tensor of tensors) {
    if (tensor.name in fields) throw new Error(`safetensors: ${tensor.name} twice`);
    fields[tensor.name] = { dtype: tensor.dtype, shape: [...tensor.shape], data_offsets: [offset, offset + tensor.byteLength] };
    offset += tensor.byteLength;
  }
  let json = JSON.stringify(fields);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const text = new TextEncoder().encode(json);
  const header = new Uint8Array(8 + text.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(text.length), true);
  header.set(text, 8);
  return { header, dataBytes: offset };
}

/**
 * Writes the file through a temporary one renamed into place, so a stopped run leaves no half file under the name.
 * Returns the file's size; reports tensor bytes written after each tensor.
 */
export async function writeStreamedSafetensors(
  file: string,
  tensors: readonly StreamedTensor[],
  options: { metadata?: Readonly<Record<string, string>>; onProgress?: (writtenBytes: number, totalBytes: number) => void } = {},
): Promise<number> {
  if (os.endianness() !== "LE") throw new Error(`${path.basename(file)}: writing safetensors needs a little-endian host`);
  const { header, dataBytes } = safetensorsHeader(tensors, options.metadata);
  await mkdir(path.dirname(file), { recursive: true });
  const temporary = `${file}.partial-${process.pid}`;
  const handle = await open(temporary, "w");
  try {
    await writeAll(handle, header);
    let written = 0;
    for (const tensor of tensors) {
      const bytes = tensor.bytes();
      if (bytes.length !== tensor.byteLength) throw new Error(`${tensor.name} is ${bytes.length} bytes, planned ${tensor.byteLength}`);
      await writeAll(handle, bytes);
      written += bytes.length;
      options.onProgress?.(written, dataBytes);
    }
    await handle.close();
    await rename(temporary, file);
    return header.length + dataBytes;
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temporary, { force: true });
    throw error;
  }
}

async function writeAll(handle: Awaited<ReturnType<typeof open>>, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done);
    done += bytesWritten;
  }
}
