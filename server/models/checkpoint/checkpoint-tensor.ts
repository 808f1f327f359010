/**
 * One tensor of a checkpoint file, described by its header and read from disk only when asked:
 * a model is gigabytes, so a build holds one tensor at a time, never the file.
 */
/** Float weights are F32, F16 or BF16; checkpoints also carry integer tensors (CLIP's position_ids is I64). */
export type CheckpointDtype = "F32" | "F16" | "BF16" | "F64" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

export interface CheckpointTensor {
  /** The key as the file names it (e.g. "model.diffusion_model.input_blocks.0.0.weight"). */
  readonly name: string;
  readonly dtype: CheckpointDtype;
  readonly shape: readonly number[];
  /** Reads the tensor's bytes now and converts them to float32 (row-major, the file's element order). */
  readFloat32(): Promise<Float32Array>;
}

/** An opened checkpoint: every tensor's description, and the file handle(s) behind them. */
export interface CheckpointFile {
  readonly path: string;
  /** "safetensors" or "ckpt" (torch's zip with a pickle). */
  readonly format: "safetensors" | "ckpt";
  readonly tensors: ReadonlyMap<string, CheckpointTensor>;
  /** The safetensors header's "__metadata__" (string values), empty for .ckpt. */
  readonly metadata: Readonly<Record<string, string>>;
  close(): Promise<void>;
}

/** A checkpoint that cannot be used: one line naming the file and why. */
export class CheckpointError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = "CheckpointError";
  }
}
