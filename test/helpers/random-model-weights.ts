// Seeded random weights for the graph tests: a ModelWeights over diffusers-named shapes whose values are drawn
// per tensor from its name and a seed, so a name gives the same values whichever order a builder reads it in.
import type { ModelWeights } from "../../server/engines/onnx/graph/model-weights.ts";
import { createRandom } from "../fixtures/make-tiny-models.ts";

/** FNV-1a of the name, started from the seed: each tensor's generator depends on its name, not on earlier draws. */
function hashName(name: string, seed: number): number {
  let h = 2166136261 ^ seed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** `count` float32 values uniform in offset ± scale, from mulberry32(seed). */
export function uniform(count: number, seed: number, scale: number, offset = 0): Float32Array {
  const next = createRandom(seed);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = offset + scale * (2 * next() - 1);
  return values;
}

/**
 * Values that keep activations near unit size through a whole net: norm scales 1 ± 0.2, biases ± 0.1,
 * embedding tables ± 1, every other weight ± √(3 / fan_in).
 */
function randomValues(name: string, shape: readonly number[], seed: number): Float32Array {
  const count = shape.reduce((a, b) => a * b, 1);
  const nameSeed = hashName(name, seed);
  if (/norm/.test(name) && name.endsWith(".weight")) return uniform(count, nameSeed, 0.2, 1);
  if (name.endsWith(".bias")) return uniform(count, nameSeed, 0.1);
  if (/embedding\.weight$/.test(name)) return uniform(count, nameSeed, 1);
  const fanIn = shape.length >= 2 ? shape.slice(1).reduce((a, b) => a * b, 1) : 1;
  return uniform(count, nameSeed, Math.sqrt(3 / fanIn));
}

export class RandomModelWeights implements ModelWeights {
  /** Every name a builder has read, to check a graph uses the tensors it should. */
  readonly readNames = new Set<string>();
  private readonly cache = new Map<string, Float32Array>();

  constructor(
    private readonly shapes: ReadonlyMap<string, readonly number[]>,
    private readonly seed = 1,
  ) {}

  shape(name: string): readonly number[] | undefined {
    return this.shapes.get(name);
  }

  has(name: string): boolean {
    return this.shapes.has(name);
  }

  names(): string[] {
    return [...this.shapes.keys()];
  }

  /** The values, for a reference computation (not counted as read). */
  values(name: string): Float32Array {
    const shape = this.shapes.get(name);
    if (shape === undefined) throw new Error(`no weight ${name}`);
    let values = this.cache.get(name);
    if (values === undefined) {
      values = randomValues(name, shape, this.seed);
      this.cache.set(name, values);
    }
    return values;
  }

  async read(name: string): Promise<Float32Array> {
    this.readNames.add(name);
    return this.values(name).slice();
  }
}
