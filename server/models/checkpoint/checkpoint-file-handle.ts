/**
 * The open file behind a checkpoint's tensors, shared by the .safetensors and .ckpt readers: each tensor reads its
 * bytes through it, and a read after close() is refused with the tensor's name rather than failing on a dead handle.
 */
import type { FileHandle } from "node:fs/promises";
import { CheckpointError } from "./checkpoint-tensor.ts";
import { readFileRange } from "./tensor-bytes.ts";

export abstract class CheckpointFileHandle {
  private handle: FileHandle | undefined;

  constructor(
    readonly path: string,
    handle: FileHandle,
  ) {
    this.handle = handle;
  }

  /** Reads exactly `length` bytes at `position` for the tensor `tensorName` (named in the error once closed). */
  async readRange(tensorName: string, position: number, length: number): Promise<Uint8Array> {
    if (!this.handle) throw new CheckpointError(this.path, `tensor "${tensorName}" was read after the file was closed`);
    return readFileRange(this.path, this.handle, position, length);
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }
}
