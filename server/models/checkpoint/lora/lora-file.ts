/**
 * A LoRA file opened as its modules: each a low-rank pair (down [r, in(, kh, kw)], up [out, r(, 1, 1)]) and an
 * optional alpha, with the module's name as the file writes it. Only headers (and the scalar alphas) are read at
 * open; the pairs are read when the weight they change is built.
 *
 * Formats (as ComfyUI's comfy/lora.py takes them):
 *  - kohya / A1111: `lora_unet_<module>` and `lora_te_<module>` with `.lora_down.weight`, `.lora_up.weight`,
 *    `.alpha`; the UNet's modules named after the LDM keys (`input_blocks_1_1_…`) or diffusers' (`down_blocks_0_…`),
 *    dots written as underscores. LoCon is the same on convolutions (down [r, in, kh, kw], up [out, r, 1, 1]).
 *  - diffusers / PEFT: `unet.<module>.lora_A.weight` / `.lora_B.weight` (down / up), `text_encoder.<module>…`,
 *    optional `.alpha`; PEFT's own `base_model.model.` prefix; diffusers' older attention-processor names
 *    (`….processor.to_q_lora.down.weight`) and text-encoder ones (`….lora_linear_layer.down.weight`).
 */
import { checkpointKindOf } from "../checkpoint-kind.ts";
import { CheckpointError, type CheckpointTensor } from "../checkpoint-tensor.ts";
import { openCheckpoint } from "../open-checkpoint.ts";

export type LoraPart = "unet" | "text_encoder";

export interface LoraModule {
  /** The module as the file names it, without the weight suffix ("lora_unet_down_blocks_0_…_to_q", "unet.down_blocks.0.….to_q"). */
  readonly key: string;
  readonly part: LoraPart;
  /**
   * What the key map looks it up by: kohya names as written (`lora_unet_…`, `lora_te_…`); dotted names as
   * `unet.<diffusers module>` or `text_encoder.<diffusers module>` (prefixes and processor names undone).
   */
  readonly lookup: string;
  readonly rank: number;
  /** The file's alpha; undefined when it has none (the scale is then the strength alone: alpha = rank). */
  readonly alpha: number | undefined;
  /** [r, in] or [r, in, kh, kw]. */
  readonly down: CheckpointTensor;
  /** [out, r] or [out, r, 1, 1]. */
  readonly up: CheckpointTensor;
}

export interface LoraFile {
  readonly path: string;
  readonly modules: readonly LoraModule[];
  /** Keys that belong to no module this reader knows (reported as unmatched). */
  readonly strayKeys: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
  close(): Promise<void>;
}

const FLOAT_DTYPES = new Set(["F32", "F16", "BF16", "F64"]);

/** LyCORIS and other adapter kinds, by a key suffix only they write. */
const OTHER_KINDS: ReadonlyArray<readonly [RegExp, string]> = [
  [/\.hada_(w1_a|w1_b|w2_a|w2_b|t1|t2)$/, "a LoHa (LyCORIS Hadamard product)"],
  [/\.lokr_(w1|w2|w1_a|w1_b|w2_a|w2_b|t2)$/, "a LoKr (LyCORIS Kronecker product)"],
  [/\.lora_mid\.weight$/, "a LoCon with a CP-decomposed (Tucker) middle (lora_mid)"],
  [/\.(oft_blocks|oft_diag|oft_R)$/, "an OFT / BOFT (LyCORIS orthogonal fine-tuning)"],
  [/\.(a1|a2|b1|b2)\.weight$/, "a GLoRA (LyCORIS)"],
  [/\.(diff|diff_b)$/, "a full-weight difference (LyCORIS full)"],
  [/\.(w_norm|b_norm)$/, "a norm-layer adapter (LyCORIS norm)"],
  [/\.(dora_scale|lora_magnitude_vector(\.[^.]+)?)$/, "a DoRA (weight-decomposed LoRA)"],
  [/\.on_input$/, "an (IA)³ (LyCORIS)"],
];

type Role = "down" | "up" | "alpha";

interface Parsed {
  readonly module: string;
  readonly role: Role;
}

/** A key's module and role, or undefined when it is no LoRA weight this reader knows. */
function parseKey(key: string): Parsed | undefined {
  const suffixes: ReadonlyArray<readonly [string, Role, (module: string) => string]> = [
    [".lora_down.weight", "down", (m) => m],
    [".lora_up.weight", "up", (m) => m],
    [".lora_A.weight", "down", (m) => m],
    [".lora_B.weight", "up", (m) => m],
    [".lora_linear_layer.down.weight", "down", (m) => m],
    [".lora_linear_layer.up.weight", "up", (m) => m],
    // diffusers' attention processors: "….attn1.processor.to_q_lora.down.weight" changes "….attn1.to_q".
    ["_lora.down.weight", "down", processorModule],
    ["_lora.up.weight", "up", processorModule],
    [".alpha", "alpha", (m) => m],
  ];
  for (const [suffix, role, module] of suffixes) {
    if (key.endsWith(suffix)) return { module: module(key.slice(0, -suffix.length)), role };
  }
  return undefined;
}

function processorModule(module: string): string {
  return module.replace(/\.processor\.(to_q|to_k|to_v)$/, ".$1").replace(/\.processor\.to_out$/, ".to_out.0");
}

/** Where a module's name says it goes, and the name the key map looks up; undefined for a name of no SD 1.x part. */
function lookupOf(module: string): { part: LoraPart; lookup: string } | "sdxl" | undefined {
  if (/^lora_te[12]_/.test(module)) return "sdxl";
  if (module.startsWith("lora_unet_")) return { part: "unet", lookup: module };
  if (module.startsWith("lora_te_")) return { part: "text_encoder", lookup: module };
  if (module.startsWith("lora_")) return undefined;
  const name = module.startsWith("base_model.model.") ? module.slice("base_model.model.".length) : module;
  if (name.startsWith("text_encoder_2.")) return "sdxl";
  if (name.startsWith("unet.")) return { part: "unet", lookup: name };
  if (name.startsWith("text_encoder.")) return { part: "text_encoder", lookup: name };
  // PEFT saves of one model carry no component prefix: CLIP's modules start with text_model.
  if (name.startsWith("text_model.")) return { part: "text_encoder", lookup: `text_encoder.${name}` };
  return { part: "unet", lookup: `unet.${name}` };
}

const shapeText = (shape: readonly number[]) => `[${shape.join(", ")}]`;

/** Opens a LoRA (.safetensors, or a torch .pt/.ckpt) and checks it is one Maskflow can apply. */
export async function openLora(file: string): Promise<LoraFile> {
  const checkpoint = await openCheckpoint(file);
  try {
    const keys = [...checkpoint.tensors.keys()];
    refuseOtherKinds(file, keys);

    const pairs = new Map<string, { down?: CheckpointTensor; up?: CheckpointTensor; alpha?: CheckpointTensor }>();
    const strayKeys: string[] = [];
    for (const [key, tensor] of checkpoint.tensors) {
      const parsed = parseKey(key);
      if (!parsed) {
        strayKeys.push(key);
        continue;
      }
      const entry = pairs.get(parsed.module) ?? {};
      if (entry[parsed.role]) throw new CheckpointError(file, `two tensors are the ${parsed.role} of LoRA module ${parsed.module} (${entry[parsed.role]?.name}, ${key})`);
      entry[parsed.role] = tensor;
      pairs.set(parsed.module, entry);
    }

    const found: Array<{ module: Omit<LoraModule, "alpha">; alpha: CheckpointTensor | undefined }> = [];
    for (const [module, { down, up, alpha }] of pairs) {
      if (!down || !up) {
        if (!down && !up && alpha) {
          strayKeys.push(alpha.name);
          continue;
        }
        const has = (down ?? up) as CheckpointTensor;
        throw new CheckpointError(file, `LoRA module ${module} has ${has.name} but no ${down ? "up" : "down"} weight`);
      }
      for (const tensor of [down, up, ...(alpha ? [alpha] : [])]) {
        if (!FLOAT_DTYPES.has(tensor.dtype)) throw new CheckpointError(file, `LoRA tensor ${tensor.name} is ${tensor.dtype}, not a float type`);
      }
      if (!(down.shape.length === 2 || down.shape.length === 4)) {
        throw new CheckpointError(file, `LoRA module ${module}: its down weight has shape ${shapeText(down.shape)}, expected [rank, in] or [rank, in, kh, kw]`);
      }
      if (!(up.shape.length === 2 || (up.shape.length === 4 && up.shape[2] === 1 && up.shape[3] === 1))) {
        throw new CheckpointError(file, `LoRA module ${module}: its up weight has shape ${shapeText(up.shape)}, expected [out, rank] or [out, rank, 1, 1]`);
      }
      const rank = down.shape[0];
      if (up.shape[1] !== rank) {
        throw new CheckpointError(
          file,
          `LoRA module ${module}: its up and down weights disagree on the rank (up ${shapeText(up.shape)} has ${up.shape[1]}, down ${shapeText(down.shape)} has ${rank})`,
        );
      }
      if (rank === 0) throw new CheckpointError(file, `LoRA module ${module} has rank 0`);
      const where = lookupOf(module);
      if (where === "sdxl") throw sdxl(file, `module ${module}`);
      if (!where) {
        strayKeys.push(down.name, up.name, ...(alpha ? [alpha.name] : []));
        continue;
      }
      // SD 1.x's cross-attention reads 768-wide text; SDXL's 2048, SD 2.x's 1024.
      if (where.part === "unet" && /attn2[._](to_k|to_v)$/.test(module)) {
        const width = down.shape[1];
        if (width === 2048) throw sdxl(file, `module ${module} reads 2048-wide text context`);
        if (width === 1024) throw new CheckpointError(file, `this is an SD 2.x LoRA (module ${module} reads 1024-wide text context): Maskflow runs SD 1.x models`);
      }
      found.push({ module: { key: module, part: where.part, lookup: where.lookup, rank, down, up }, alpha });
    }
    if (found.length === 0) throw new CheckpointError(file, notALora(keys, checkpoint.tensors));

    // The alphas are scalars: read now, so a plan knows each module's scale before anything is built.
    const modules = await Promise.all(
      found.map(async ({ module, alpha }): Promise<LoraModule> => {
        if (!alpha) return { ...module, alpha: undefined };
        const values = await alpha.readFloat32();
        if (values.length !== 1 || !Number.isFinite(values[0])) {
          throw new CheckpointError(file, `LoRA alpha ${alpha.name} is not one finite number (shape ${shapeText(alpha.shape)})`);
        }
        return { ...module, alpha: values[0] };
      }),
    );
    return {
      path: file,
      modules,
      strayKeys,
      metadata: checkpoint.metadata,
      close: () => checkpoint.close(),
    };
  } catch (error) {
    await checkpoint.close();
    throw error;
  }
}

function sdxl(file: string, why: string): CheckpointError {
  return new CheckpointError(file, `this is an SDXL LoRA (${why}): Maskflow runs SD 1.x models, and SDXL LoRAs do not fit them`);
}

function refuseOtherKinds(file: string, keys: readonly string[]): void {
  for (const [pattern, what] of OTHER_KINDS) {
    const found = keys.find((key) => pattern.test(key));
    if (found) {
      throw new CheckpointError(file, `this is ${what}, which is not supported yet (key ${found}): Maskflow applies LoRA and LoCon (lora_down/lora_up, lora_A/lora_B)`);
    }
  }
  if (keys.some((key) => /^lora_te[12]_|^(base_model\.model\.)?text_encoder_2\./.test(key))) {
    throw sdxl(file, "it has lora_te1_/lora_te2_ or text_encoder_2 keys: two text encoders");
  }
}

/** Why a file with no LoRA module is refused, in the user's terms. */
function notALora(keys: readonly string[], tensors: ReadonlyMap<string, CheckpointTensor>): string {
  if (keys.length === 0) return "it holds no tensors: not a LoRA";
  if (keys.some((key) => /^(string_to_param|emb_params|clip_l|clip_g)$/.test(key) || key.startsWith("string_to_param."))) {
    return "this is a textual-inversion embedding, not a LoRA";
  }
  const kind = checkpointKindOf(keys, (key) => tensors.get(key)?.shape);
  if (kind.kind === "sd1") return "this is a checkpoint, not a LoRA: load it with Load Checkpoint";
  if (kind.what === "a LoRA") return "it holds no LoRA module Maskflow can read (only alphas or unknown keys)";
  if (kind.what.startsWith("not a Stable Diffusion")) {
    // A diffusers component file (a UNet's diffusion_pytorch_model.safetensors) is a model's weights too.
    if (keys.some((key) => /^(down_blocks|up_blocks|mid_block)\.|^text_model\.|^(encoder|decoder)\.conv_in\./.test(key))) {
      return "this is a model's weights (a diffusers component), not a LoRA";
    }
    return "it holds no LoRA weights (kohya's lora_down/lora_up or PEFT's lora_A/lora_B)";
  }
  return `this is ${kind.what}, not a LoRA`;
}
