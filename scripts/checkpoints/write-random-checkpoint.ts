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
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { SdArchitecture } from "../../server/engines/onnx/graph/architecture.ts";
import { toFloat16Bits } from "../../server/engines/onnx/float16.ts";
import { type StreamedTensor, writeStreamedSafetensors } from "./streamed-safetensors.ts";
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

/** The checkpoint's tensors in file order (safetensors': by dtype, then name), each drawn when written. */
function tensorsOf(architecture: SdArchitecture, float: CheckpointFloat, seed: number): Array<StreamedTensor & { readonly entry: LdmEntry }> {
  const dtypeOf = (entry: LdmEntry): Dtype => (entry.source === "position_ids" ? "I64" : float);
  return ldmEntries(architecture)
    .sort((a, b) => DTYPE_RANK[dtypeOf(a)] - DTYPE_RANK[dtypeOf(b)] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((entry) => {
      const dtype = dtypeOf(entry);
      return { entry, name: entry.name, dtype, shape: entry.shape, byteLength: elementCount(entry.shape) * BYTES[dtype], bytes: () => tensorBytes(entry, dtype, seed) };
    });
}

/** One tensor's little-endian bytes. */
function tensorBytes(entry: LdmEntry, dtype: Dtype, seed: number): Uint8Array {
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
  const tensors = tensorsOf(options.architecture ?? SD15_INPAINTING_ARCHITECTURE, options.float ?? "F32", options.seed ?? 1505);
  const bytes = await writeStreamedSafetensors(file, tensors, { onProgress: options.onProgress });
  const parameters = tensors.reduce((sum, { entry }) => sum + (entry.source === "random" ? elementCount(entry.shape) : 0), 0);
  return { file, tensors: tensors.length, parameters, bytes };
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
