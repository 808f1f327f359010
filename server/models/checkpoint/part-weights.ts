/**
 * One network's weights (UNet, VAE or text encoder) under diffusers' names, backed by checkpoint
 * tensors that are read only when a graph is written. Shape fixes that are pure relabelling (a 1×1
 * convolution used as a Linear) happen here, so the graph builders see diffusers' layout only.
 */
import type { ModelWeights } from "../../engines/onnx/graph/model-weights.ts";
import { CheckpointError, type CheckpointTensor } from "./checkpoint-tensor.ts";

interface Entry {
  readonly tensor: CheckpointTensor;
  readonly shape: readonly number[];
}

export class PartWeights implements ModelWeights {
  private readonly entries = new Map<string, Entry>();

  constructor(readonly file: string) {}

  /** Adds a tensor under its diffusers name, optionally with another shape of the same element count. */
  add(name: string, tensor: CheckpointTensor, shape: readonly number[] = tensor.shape): void {
    const existing = this.entries.get(name);
    if (existing) {
      throw new CheckpointError(this.file, `two tensors map to ${name}: ${existing.tensor.name} and ${tensor.name}`);
    }
    this.entries.set(name, { tensor, shape });
  }

  /** The same tensor under another shape of the same element count (a Linear as a 1×1 convolution). */
  replaceShape(name: string, tensor: CheckpointTensor, shape: readonly number[]): void {
    this.entries.set(name, { tensor, shape });
  }

  get names(): readonly string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The checkpoint tensor behind a diffusers name (its dtype tells a build what it reads). */
  tensor(name: string): CheckpointTensor | undefined {
    return this.entries.get(name)?.tensor;
  }

  shape(name: string): readonly number[] | undefined {
    return this.entries.get(name)?.shape;
  }

  async read(name: string): Promise<Float32Array> {
    const entry = this.entries.get(name);
    if (!entry) throw new CheckpointError(this.file, `no weight ${name}`);
    return entry.tensor.readFloat32();
  }
}
