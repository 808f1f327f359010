// Writes an SD 1.x single-file checkpoint (LDM / A1111 layout, .safetensors) with seeded random weights,
// streamed one tensor at a time: the full-size SD 1.5 inpainting model (1.07 G parameters, 4.27 GB in F32) is
// never held in memory, only its largest tensor (CLIP's token embedding, 152 MB as float32). The names, shapes
// and values are those of scripts/checkpoints/sd15-checkpoint-layout.ts, so at the tiny fixture's architecture
// and seed this writes test/fixtures/make-tiny-checkpoint.ts's single-file.safetensors (F32) and
// fp16.safetensors (F16) byte for byte; the layout of the file is the safetensors library's (tensors ordered by
// dtype, then name; the JSON header padded with spaces to 8 bytes).
//
// Usage: node bin/run-ts.js scripts/checkpoints/write-random-checkpoint.ts OUT.safetensors [--f16] [--seed N]
//   (the full-size SD 1.5 inpainting architecture).
import { mkdir, open, rename, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { SdArchitecture } from "../../server/engines/onnx/graph/architecture.ts";
import { toFloat16Bits } from "../../server/engines/onnx/float16.ts";
import { elementCount, ldmEntries, type LdmEntry, SD15_INPAINTING_ARCHITECTURE, tensorValues } from "./sd15-checkpoint-layout.ts";

export type CheckpointFloat = "F32" | "F16";
type Dtype = CheckpointFloat | "I64";

const BYTES: Record<Dtype, number> = { F32: 4, F16: 2, I64: 8 };
/** safetensors orders tensors by dtype, widest first (its Rust Dtype enum order, reversed), then by name. */
const DTYPE_RANK: Record<Dtype, number> = { I64: 0, F32: 1, F16: 3 };

export interface RandomCheckpointOptions {
  readonly architecture?: SdArchitecture;
  /** The float tensors' dtype (CLIP's position_ids stays int64). Default F32. */
  readonly float?: CheckpointFloat;
  readonly seed?: number;
  /** After each tensor: bytes of tensor data written so far, of the total. */
  readonly onProgress?: (writtenBytes: number, totalBytes: number) => void;
}

export interface RandomCheckpointSummary {
  readonly file: string;
  readonly tensors: number;
  readonly parameters: number;
  readonly bytes: number;
}

interface Planned {
  readonly entry: LdmEntry;
  readonly dtype: Dtype;
  readonly begin: number;
  readonly end: number;
}

/** The header's tensors in file order, with their byte ranges. */
function plan(architecture: SdArchitecture, float: CheckpointFloat): { planned: Planned[]; header: Uint8Array } {
  const dtypeOf = (entry: LdmEntry): Dtype => (entry.source === "position_ids" ? "I64" : float);
  const ordered = ldmEntries(architecture).sort(
    (a, b) => DTYPE_RANK[dtypeOf(a)] - DTYPE_RANK[dtypeOf(b)] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const header: Record<string, unknown> = {};
  const planned: Planned[] = [];
  let offset = 0;
  for (const entry of ordered) {
    if (entry.name in header) throw new Error(`write-random-checkpoint: ${entry.name} twice`);
    const dtype = dtypeOf(entry);
    const length = elementCount(entry.shape) * BYTES[dtype];
    header[entry.name] = { dtype, shape: [...entry.shape], data_offsets: [offset, offset + length] };
    planned.push({ entry, dtype, begin: offset, end: offset + length });
    offset += length;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const text = new TextEncoder().encode(json);
  const bytes = new Uint8Array(8 + text.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(text.length), true);
  bytes.set(text, 8);
  return { planned, header: bytes };
}

/** One tensor's little-endian bytes. */
function tensorBytes(item: Planned, seed: number): Uint8Array {
  const { entry, dtype } = item;
  if (entry.source === "position_ids") {
    return new Uint8Array(BigInt64Array.from({ length: elementCount(entry.shape) }, (_, i) => BigInt(i)).buffer);
  }
  const values = entry.source === "schedule" ? Float32Array.from(entry.values) : tensorValues(entry.component, entry.spec, seed);
  if (dtype === "F32") return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const half = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) half[i] = toFloat16Bits(values[i]);
  return new Uint8Array(half.buffer);
}

/**
 * Writes the checkpoint to `file` (through a temporary file renamed into place, so a stopped run leaves no
 * half file under the name). The same options give the same bytes.
 */
export async function writeRandomCheckpoint(file: string, options: RandomCheckpointOptions = {}): Promise<RandomCheckpointSummary> {
  if (os.endianness() !== "LE") throw new Error("write-random-checkpoint: needs a little-endian host");
  const architecture = options.architecture ?? SD15_INPAINTING_ARCHITECTURE;
  const seed = options.seed ?? 1505;
  const { planned, header } = plan(architecture, options.float ?? "F32");
  const totalBytes = planned.length ? planned[planned.length - 1].end : 0;
  await mkdir(path.dirname(file), { recursive: true });
  const temporary = `${file}.partial-${process.pid}`;
  const handle = await open(temporary, "w");
  try {
    await writeAll(handle, header);
    let parameters = 0;
    for (const item of planned) {
      const bytes = tensorBytes(item, seed);
      if (bytes.length !== item.end - item.begin) throw new Error(`write-random-checkpoint: ${item.entry.name} is ${bytes.length} bytes, planned ${item.end - item.begin}`);
      await writeAll(handle, bytes);
      if (item.entry.source === "random") parameters += elementCount(item.entry.shape);
      options.onProgress?.(item.end, totalBytes);
    }
    await handle.close();
    await rename(temporary, file);
    return { file, tensors: planned.length, parameters, bytes: header.length + totalBytes };
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

async function main(argv: readonly string[]): Promise<void> {
  let out: string | undefined;
  let float: CheckpointFloat = "F32";
  let seed: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--f16") float = "F16";
    else if (arg === "--seed" && argv[i + 1] !== undefined) seed = Number(argv[++i]);
    else if (!arg.startsWith("--") && out === undefined) out = arg;
    else throw new Error(`unknown argument ${arg}; usage: write-random-checkpoint.ts OUT.safetensors [--f16] [--seed N]`);
  }
  if (out === undefined) throw new Error("usage: write-random-checkpoint.ts OUT.safetensors [--f16] [--seed N]");
  if (seed !== undefined && !Number.isInteger(seed)) throw new Error("--seed must be a whole number");
  const started = performance.now();
  let shown = 0;
  const summary = await writeRandomCheckpoint(path.resolve(out), {
    float,
    seed,
    onProgress: (written, total) => {
      const percent = Math.floor((100 * written) / total);
      if (percent >= shown + 10) process.stderr.write(`${(shown = percent)} %\n`);
    },
  });
  console.log(`${summary.file}: ${summary.tensors} tensors, ${summary.parameters} parameters, ${summary.bytes} bytes, ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(path.resolve(entry)).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
