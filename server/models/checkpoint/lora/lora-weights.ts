/**
 * LoRAs applied as a model is built: each weight a LoRA changes is read as base + Σ scale · (up · down), with
 * scale = strength × alpha / rank (alpha absent: the strength alone), computed in float32 when the graph builder
 * reads that weight — a LoRA's tensors are read then, and no merged copy of the model is ever held (the product:
 * lora-product.ts).
 */
import type { ModelWeights } from "../../../engines/onnx/graph/model-weights.ts";
import { CheckpointError } from "../checkpoint-tensor.ts";
import type { LoraUse } from "../model-recipe.ts";
import { openLora, type LoraFile, type LoraModule } from "./lora-file.ts";
import { mapLoraModules, type LoraModelParts, type UnmatchedLoraKey } from "./lora-key-map.ts";
import { addLoraProduct } from "./lora-product.ts";

export interface LoraDelta {
  /** The diffusers weight it changes. */
  readonly name: string;
  readonly module: LoraModule;
  /** strength × alpha / rank: 0 changes nothing (the module is skipped). */
  readonly scale: number;
}

/** `weights` with each delta added to its weight when that weight is read; other weights are read untouched. */
export function withLoras(weights: ModelWeights, deltas: ReadonlyArray<LoraDelta>): ModelWeights {
  const byName = new Map<string, LoraDelta[]>();
  for (const delta of deltas) {
    if (delta.scale === 0) continue;
    const list = byName.get(delta.name) ?? [];
    list.push(delta);
    byName.set(delta.name, list);
  }
  if (byName.size === 0) return weights;
  return {
    shape: (name) => weights.shape(name),
    async read(name) {
      const base = await weights.read(name);
      const list = byName.get(name);
      if (!list) return base;
      const shape = weights.shape(name) ?? [base.length];
      const out = shape[0];
      const columns = base.length / out;
      // The base may be a view of a reader's buffer: add into a copy of our own.
      const merged = new Float32Array(base);
      for (const { module, scale } of list) {
        const [up, down] = await Promise.all([module.up.readFloat32(), module.down.readFloat32()]);
        if (up.length !== out * module.rank || down.length !== module.rank * columns) {
          throw new CheckpointError(module.up.name, `LoRA module ${module.key} does not fit ${name} [${shape.join(", ")}]`);
        }
        addLoraProduct(merged, up, down, out, module.rank, columns, scale);
      }
      return merged;
    },
  };
}

export interface LoraPlan {
  readonly unet: readonly LoraDelta[];
  readonly textEncoder: readonly LoraDelta[];
  /** Keys that match nothing, of LoRAs whose `ignoreUnmatched` is set (the others fail the plan). */
  readonly unmatched: ReadonlyArray<{ readonly file: string; readonly key: string; readonly reason: string }>;
  /** Per LoRA (in the order given): whether it changes the UNet and the text encoder at its strengths; a build keys each part by these. */
  readonly touches: ReadonlyArray<{ readonly unet: boolean; readonly textEncoder: boolean }>;
  /** Closes the LoRA files: call it after the build has read every weight. */
  close(): Promise<void>;
}

const LISTED_UNMATCHED = 20;

function unmatchedMessage(unmatched: readonly UnmatchedLoraKey[], total: number): string {
  const listed = unmatched.slice(0, LISTED_UNMATCHED).map(({ key, reason }) => `${key} (${reason})`);
  const more = unmatched.length > LISTED_UNMATCHED ? `; and ${unmatched.length - LISTED_UNMATCHED} more` : "";
  return (
    `${unmatched.length} of its ${total} LoRA modules and keys match no weight of this model: ${listed.join("; ")}${more}. ` +
    "Is it a LoRA for another model? Set ignore unmatched to apply the rest anyway"
  );
}

/**
 * Opens each LoRA, matches its modules to the model's weights and returns the deltas to apply in order, with
 * scale = strength_model (UNet) or strength_clip (text encoder) × alpha / rank. A LoRA with keys that match
 * nothing is refused, naming them, unless its `ignoreUnmatched` is set.
 */
export async function planLoras(loras: readonly LoraUse[], parts: LoraModelParts, unetLayersPerBlock: number): Promise<LoraPlan> {
  const opened: LoraFile[] = [];
  const close = async () => {
    await Promise.all(opened.map((file) => file.close()));
  };
  try {
    const unet: LoraDelta[] = [];
    const textEncoder: LoraDelta[] = [];
    const touches: Array<{ unet: boolean; textEncoder: boolean }> = [];
    const ignored: Array<{ file: string; key: string; reason: string }> = [];
    for (const use of loras) {
      const lora = await openLora(use.file);
      opened.push(lora);
      const { matched, unmatched } = mapLoraModules(lora, parts, unetLayersPerBlock);
      if (unmatched.length > 0) {
        if (!use.ignoreUnmatched) throw new CheckpointError(use.file, unmatchedMessage(unmatched, lora.modules.length + lora.strayKeys.length));
        for (const { key, reason } of unmatched) ignored.push({ file: use.file, key, reason });
      }
      const touched = { unet: false, textEncoder: false };
      for (const { module, target } of matched) {
        const strength = target.part === "unet" ? use.strengthModel : use.strengthClip;
        const scale = (strength * (module.alpha ?? module.rank)) / module.rank;
        if (scale === 0) continue;
        (target.part === "unet" ? unet : textEncoder).push({ name: target.name, module, scale });
        touched[target.part === "unet" ? "unet" : "textEncoder"] = true;
      }
      touches.push(touched);
    }
    return { unet, textEncoder, unmatched: ignored, touches, close };
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
}
