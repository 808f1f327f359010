/**
 * Which weight of the model each LoRA module changes. The lookup is built the way ComfyUI's comfy/lora.py builds
 * it (`model_lora_keys_unet`, `model_lora_keys_clip`): from every weight the model has, every name a LoRA may
 * give it — kohya's in diffusers naming (`lora_unet_down_blocks_0_…`), kohya's in LDM naming
 * (`lora_unet_input_blocks_1_1_…`), diffusers / PEFT's (`unet.down_blocks.0.…`), and for CLIP
 * `lora_te_text_model_encoder_layers_N_…` and `text_encoder.text_model.…` — so a module matches only a weight
 * that exists, and only when the shapes fit.
 */
import { unetLdmKeys } from "../ldm-names.ts";
import type { LoraFile, LoraModule, LoraPart } from "./lora-file.ts";

/** A network's weight names and shapes (a PartWeights). */
export interface ModelPartNames {
  readonly names: readonly string[];
  shape(name: string): readonly number[] | undefined;
}

export interface LoraModelParts {
  readonly unet: ModelPartNames;
  readonly textEncoder: ModelPartNames;
}

export interface LoraTarget {
  readonly part: LoraPart;
  /** The diffusers weight name ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"). */
  readonly name: string;
}

export interface MatchedLoraModule {
  readonly module: LoraModule;
  readonly target: LoraTarget;
}

export interface UnmatchedLoraKey {
  /** The module as the file names it (or a key that is no module). */
  readonly key: string;
  readonly reason: string;
}

export interface LoraKeyMap {
  readonly matched: readonly MatchedLoraModule[];
  readonly unmatched: readonly UnmatchedLoraKey[];
}

const underscored = (name: string) => name.replace(/\./g, "_");

/** Every name a LoRA may give each weight of the model → that weight. */
export function loraLookup(model: LoraModelParts, unetLayersPerBlock: number): Map<string, LoraTarget> {
  const lookup = new Map<string, LoraTarget>();
  const add = (key: string, target: LoraTarget) => {
    if (!lookup.has(key)) lookup.set(key, target);
  };
  const unetWeights = model.unet.names.filter((name) => name.endsWith(".weight"));
  const ldm = unetLdmKeys(unetWeights, unetLayersPerBlock);
  for (const name of unetWeights) {
    const module = name.slice(0, -".weight".length);
    const target: LoraTarget = { part: "unet", name };
    add(`lora_unet_${underscored(module)}`, target);
    const ldmKey = ldm.get(name);
    if (ldmKey !== undefined) add(`lora_unet_${underscored(ldmKey.slice(0, -".weight".length))}`, target);
    add(`unet.${module}`, target);
  }
  for (const name of model.textEncoder.names) {
    if (!name.endsWith(".weight")) continue;
    const module = name.slice(0, -".weight".length);
    const target: LoraTarget = { part: "text_encoder", name };
    add(`lora_te_${underscored(module)}`, target);
    add(`text_encoder.${module}`, target);
  }
  return lookup;
}

const shapeText = (shape: readonly number[]) => `[${shape.join(", ")}]`;

/**
 * Why a module's up · down cannot be added to a weight of `shape`, or undefined when it can: the output rows must
 * agree and the down weight's columns must be the weight's (a Linear LoRA [out, in] fits a 1×1 convolution
 * [out, in, 1, 1]; a LoCon's [r, in, kh, kw] needs the same kernel).
 */
export function loraShapeMismatch(module: LoraModule, name: string, shape: readonly number[]): string | undefined {
  const out = module.up.shape[0];
  const columns = module.down.shape.slice(1);
  const pointwise = (dims: readonly number[]) => dims.length === 1 || dims.slice(1).every((dim) => dim === 1);
  const fits =
    (shape.length === 2 || shape.length === 4) &&
    shape[0] === out &&
    shape[1] === columns[0] &&
    // A Linear pair on a Linear or a 1×1 convolution, a 1×1 pair on either, a LoCon pair on a convolution of its kernel.
    (pointwise(columns) ? pointwise(shape.slice(1)) : shape.length === 4 && shape[2] === columns[1] && shape[3] === columns[2]);
  if (fits) return undefined;
  return `its shape does not fit: the LoRA changes a [${[out, ...columns].join(", ")}] weight (rank ${module.rank}), ${name} is ${shapeText(shape)}`;
}

/** The weight each module of `lora` changes, and the modules (and stray keys) that match none. */
export function mapLoraModules(lora: LoraFile, model: LoraModelParts, unetLayersPerBlock: number): LoraKeyMap {
  const lookup = loraLookup(model, unetLayersPerBlock);
  const matched: MatchedLoraModule[] = [];
  const unmatched: UnmatchedLoraKey[] = [];
  const taken = new Map<string, string>();
  for (const module of lora.modules) {
    const target = lookup.get(module.lookup);
    if (!target || target.part !== module.part) {
      unmatched.push({ key: module.key, reason: `no ${module.part === "unet" ? "UNet" : "text encoder"} weight of this model has that name` });
      continue;
    }
    const weights = target.part === "unet" ? model.unet : model.textEncoder;
    const shape = weights.shape(target.name);
    const mismatch = shape === undefined ? `${target.name} has no shape` : loraShapeMismatch(module, target.name, shape);
    if (mismatch !== undefined) {
      unmatched.push({ key: module.key, reason: mismatch });
      continue;
    }
    const id = `${target.part}:${target.name}`;
    const previous = taken.get(id);
    if (previous !== undefined) {
      unmatched.push({ key: module.key, reason: `module ${previous} of the same file already changes ${target.name}` });
      continue;
    }
    taken.set(id, module.key);
    matched.push({ module, target });
  }
  for (const key of lora.strayKeys) unmatched.push({ key, reason: "not a LoRA weight Maskflow knows (no lora_down/lora_up or lora_A/lora_B module)" });
  return { matched, unmatched };
}
