// Writes a LoRA with LCM-LoRA's layout (latent-consistency/lcm-lora-sdv1-5's pytorch_lora_weights.safetensors) and
// seeded random values, streamed one tensor at a time like write-random-checkpoint.ts: kohya keys in diffusers
// naming (`lora_unet_<module, dots as underscores>` with `.lora_down.weight`, `.lora_up.weight`, `.alpha`), F16,
// rank 64, on the UNet modules LCM-LoRA's training script (diffusers' train_lcm_distill_lora_sd.py) targets: every
// attention's to_q / to_k / to_v / to_out.0, the transformers' proj_in / proj_out (1×1 convolutions in SD 1.5),
// ff.net.0.proj / ff.net.2, the ResNets' conv1 / conv2 / time_emb_proj / conv_shortcut, and the down- and upsamplers'
// conv; not conv_in, conv_out, the time embedding or the text encoder. On SD 1.5 that is 278 modules, 834 tensors
// and 67,252,502 values: with F16 scalar alphas and torch's {"format": "pt"} metadata the file is 134,621,556 bytes,
// the size the hub lists for the real one (server/models/helper-model-catalog.ts), to the byte.
//
// A Linear [out, in] gets down [64, in] and up [out, 64]; a k×k convolution [out, in, k, k] gets down [64, in, k, k]
// and up [out, 64, 1, 1] (PEFT's LoRA on Conv2d). Values: down ±1/√fan_in, up ±0.1, alpha 8, so each merged
// weight moves by about 6 % of its own spread (alpha / rank · up · down) and a random model stays finite. The real
// file's alpha was not checked here (it sets the merge's scale, not its work).
//
// Usage: node bin/run-ts.js scripts/checkpoints/write-random-lora.ts OUT.safetensors [--seed N]
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { UnetArchitecture } from "../../server/engines/onnx/graph/architecture.ts";
import { toFloat16Bits } from "../../server/engines/onnx/float16.ts";
import { safetensorsHeader, type StreamedTensor, writeStreamedSafetensors } from "./streamed-safetensors.ts";
import { elementCount, SD15_INPAINTING_ARCHITECTURE, tensorValues, unetSpecs } from "./sd15-checkpoint-layout.ts";

export const LCM_LORA_RANK = 64;
export const LCM_LORA_ALPHA = 8;
const UP_BOUND = 0.1;

/** The UNet weights LCM-LoRA changes (diffusers names, PEFT target_modules matched as PEFT matches them: by suffix). */
const LCM_LORA_TARGET = /\.(to_q|to_k|to_v|to_out\.0|proj_in|proj_out|ff\.net\.0\.proj|ff\.net\.2|conv1|conv2|conv_shortcut|time_emb_proj)\.weight$|\.(downsamplers|upsamplers)\.0\.conv\.weight$/;

export interface LoraModuleLayout {
  /** kohya's module name: "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q". */
  readonly key: string;
  /** The diffusers weight it changes. */
  readonly weight: string;
  readonly down: readonly number[];
  readonly up: readonly number[];
  /** The down weight's fan-in (in · kh · kw): its values are ±1/√fanIn. */
  readonly fanIn: number;
}

/** LCM-LoRA's modules on an SD 1.x UNet, in the UNet's module order. */
export function lcmLoraModules(unet: UnetArchitecture = SD15_INPAINTING_ARCHITECTURE.unet, rank = LCM_LORA_RANK): LoraModuleLayout[] {
  return unetSpecs(unet)
    .filter((spec) => LCM_LORA_TARGET.test(spec.name))
    .map((spec) => {
      const [out, input, kh = 1, kw = 1] = spec.shape;
      const module = spec.name.slice(0, -".weight".length);
      const conv = spec.shape.length === 4;
      return {
        key: `lora_unet_${module.replace(/\./g, "_")}`,
        weight: spec.name,
        down: conv ? [rank, input, kh, kw] : [rank, input],
        up: conv ? [out, rank, 1, 1] : [out, rank],
        fanIn: input * kh * kw,
      };
    });
}

export interface RandomLoraSummary {
  readonly file: string;
  readonly modules: number;
  readonly tensors: number;
  /** Values in all tensors, alphas included. */
  readonly values: number;
  readonly bytes: number;
}

export interface RandomLoraOptions {
  readonly unet?: UnetArchitecture;
  readonly seed?: number;
  readonly onProgress?: (writtenBytes: number, totalBytes: number) => void;
}

/** The LoRA's tensors in file order (safetensors': by dtype, all F16 here, then by name), each drawn when written. */
function tensorsOf(modules: readonly LoraModuleLayout[], seed: number): StreamedTensor[] {
  const tensors: StreamedTensor[] = [];
  const f16 = (name: string, shape: readonly number[], values: () => Float32Array): StreamedTensor => ({
    name,
    dtype: "F16",
    shape,
    byteLength: elementCount(shape) * 2,
    bytes: () => {
      const floats = values();
      const half = new Uint16Array(floats.length);
      for (let i = 0; i < floats.length; i++) half[i] = toFloat16Bits(floats[i]);
      return new Uint8Array(half.buffer);
    },
  });
  for (const module of modules) {
    const draw = (role: string, shape: readonly number[], bound: number) => () =>
      tensorValues("unet", { name: `${module.key}.${role}`, shape, init: { kind: "uniform", bound } }, seed);
    tensors.push(f16(`${module.key}.alpha`, [], () => Float32Array.of(LCM_LORA_ALPHA)));
    tensors.push(f16(`${module.key}.lora_down.weight`, module.down, draw("lora_down", module.down, 1 / Math.sqrt(module.fanIn))));
    tensors.push(f16(`${module.key}.lora_up.weight`, module.up, draw("lora_up", module.up, UP_BOUND)));
  }
  return tensors.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** torch's safetensors.torch.save_file writes {"format": "pt"} as the metadata. */
const METADATA = { format: "pt" };

/** The size of the file writeRandomLcmLora writes (header included), worked out without drawing a value. */
export function randomLcmLoraBytes(unet?: UnetArchitecture): number {
  const { header, dataBytes } = safetensorsHeader(tensorsOf(lcmLoraModules(unet), 0), METADATA);
  return header.length + dataBytes;
}

/** Writes the LoRA to `file` through a temporary file renamed into place. The same options give the same bytes. */
export async function writeRandomLcmLora(file: string, options: RandomLoraOptions = {}): Promise<RandomLoraSummary> {
  const modules = lcmLoraModules(options.unet);
  const tensors = tensorsOf(modules, options.seed ?? 1505);
  const bytes = await writeStreamedSafetensors(file, tensors, { metadata: METADATA, onProgress: options.onProgress });
  const values = tensors.reduce((sum, tensor) => sum + elementCount(tensor.shape), 0);
  return { file, modules: modules.length, tensors: tensors.length, values, bytes };
}

async function main(argv: readonly string[]): Promise<void> {
  let out: string | undefined;
  let seed: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--seed" && argv[i + 1] !== undefined) seed = Number(argv[++i]);
    else if (!arg.startsWith("--") && out === undefined) out = arg;
    else throw new Error(`unknown argument ${arg}; usage: write-random-lora.ts OUT.safetensors [--seed N]`);
  }
  if (out === undefined) throw new Error("usage: write-random-lora.ts OUT.safetensors [--seed N]");
  if (seed !== undefined && !Number.isInteger(seed)) throw new Error("--seed must be a whole number");
  const started = performance.now();
  const summary = await writeRandomLcmLora(path.resolve(out), { seed });
  console.log(
    `${summary.file}: ${summary.modules} modules, ${summary.tensors} tensors, ${summary.values} values, ${summary.bytes} bytes, ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(path.resolve(entry)).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
