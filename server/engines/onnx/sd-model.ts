/**
 * A Stable Diffusion (inpainting) model folder in the layout Hugging Face optimum exports, loaded and
 * checked: every file present, every session's inputs and outputs named and typed as the pipeline
 * expects. A problem is one message naming the file and what was expected.
 */
import { readFile, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { REQUIRED_FILES } from "../../models/onnx-layout.ts";
import { loadPooledTokenizer, type PromptTokenizer } from "./pooled-tokenizer.ts";
import { consoleLog } from "../../logging/server-log.ts";
import { conversionPhase, type Fp16OnCpu, sessionFileFor } from "./fp32-cache.ts";
import { type DeviceName, ModelLoadError, OnnxSession, type SessionTuning, type ValueSpec } from "./onnx-session.ts";

export interface SdModelInfo {
  readonly dir: string;
  /** 9 runs the inpainting path; 4 runs diffusers' legacy blend-back path. */
  readonly unetInChannels: 4 | 9;
  readonly hiddenSize: number;
  /** The export's float type: an fp16 export opened as its fp32 copy on CPU (fp32-cache.ts) still says float16. */
  readonly floatType: "float32" | "float16";
  readonly timestepType: string;
  /** Whether uncond and cond can share one UNet call (the batch dim is not fixed to 1). */
  readonly unetBatchable: boolean;
  /** "latent_parameters" (mean ‖ logvar, newer exports) or "latent_sample". */
  readonly vaeEncoderOutput: "latent_parameters" | "latent_sample";
  readonly vaeScalingFactor: number;
  /** Pixels per latent along each side: 2^(VAE blocks − 1), 8 for SD 1.5 (diffusers' vae_scale_factor). */
  readonly vaeScaleFactor: number;
  /** Side of a tiled VAE's tile in pixels: the VAE's sample_size (diffusers' tile_sample_min_size), 512 for SD 1.5. */
  readonly vaeTileSize: number;
  /** The size the UNet was trained at, in pixels: unet/config.json's sample_size × vaeScaleFactor (512 for SD 1.5). */
  readonly nativeSize: number;
  readonly inputIdsName: string;
}

export interface SdModel {
  readonly info: SdModelInfo;
  readonly tokenizer: PromptTokenizer;
  readonly textEncoder: OnnxSession;
  readonly unet: OnnxSession;
  readonly vaeEncoder: OnnxSession;
  readonly vaeDecoder: OnnxSession;
  readonly schedulerConfig: Readonly<Record<string, unknown>>;
  release(): Promise<void>;
}

export type GuidanceCalls = "batched" | "sequential";
export type ResidentSessions = "all" | "unet";

/**
 * An fp16 file opened as it is on CPU (MASKFLOW_FP16_ON_CPU=keep, or no disk room for the fp32 copy), where
 * onnxruntime computes nearly everything in fp32: at level "all" it makes fp32 copies of the weights at load
 * (SD 1.5: 6.29 GB peak, 4.25 GB idle, 13.1 s a step), at "extended" it keeps them fp16 and casts as it runs
 * (5.88 GB peak, 2.29 GB idle, 17.2 s a step; fp32 export 5.91 GB, 11.5 s). The memory bound wins: README,
 * "Real-size models".
 */
const FP16_ON_CPU: Partial<SessionTuning> = { optimization: "extended" };

/** Sessions a model folder loads, in order: load progress counts them. */
export const MODEL_PARTS = ["text_encoder", "unet", "vae_encoder", "vae_decoder"] as const;

export async function loadSdModel(
  dir: string,
  options: {
    device?: DeviceName;
    threads?: number;
    tuning?: Partial<SessionTuning>;
    /** "sequential": uncond and cond in two UNet calls even when one batched call is possible (half the activations). */
    guidanceCalls?: GuidanceCalls;
    /** "unet": the text encoder and VAE are opened for each run and closed after, not held while the UNet works. */
    residentSessions?: ResidentSessions;
    /** On CPU, fp16 session files are opened as fp32 copies converted once ("convert", the default) or as they are. */
    fp16OnCpu?: Fp16OnCpu;
    /** Where a fallback to an fp16 file is explained (the console by default). */
    warn?: (message: string) => void;
    onProgress?: (loaded: number, total: number, part: string) => void;
  } = {},
): Promise<SdModel> {
  const root = path.resolve(dir);
  try {
    if (!(await stat(root)).isDirectory()) throw new Error();
  } catch {
    throw new ModelLoadError(
      root,
      "no model folder here: pull one with `maskflow models pull`, or point --model / MASKFLOW_MODEL_DIR at an ONNX export",
    );
  }
  for (const file of REQUIRED_FILES) {
    try {
      const info = await stat(path.join(root, file));
      if (!info.isFile() || info.size === 0) throw new Error();
    } catch {
      throw new ModelLoadError(path.join(root, file), "missing or empty: the model folder needs " + REQUIRED_FILES.join(", "));
    }
  }
  const schedulerConfig = await readJson(root, "scheduler/scheduler_config.json");
  const unetConfig = await readJson(root, "unet/config.json", true);
  const modelIndex = await readJson(root, "model_index.json");
  // Either half of the VAE carries the whole AutoencoderKL config; the decoder's is read first.
  let vaeConfigFile = "vae_decoder/config.json";
  let vaeConfig = await readJson(root, vaeConfigFile, true);
  if (!vaeConfig) {
    vaeConfigFile = "vae_encoder/config.json";
    vaeConfig = (await readJson(root, vaeConfigFile, true)) ?? {};
  }
  const vaeScaleFactor = vaeScaleFactorOf(vaeConfig, path.join(root, vaeConfigFile));
  const device = options.device ?? "cpu";
  const sessionOptions = { device, threads: options.threads ?? os.availableParallelism() };
  let loaded = 0;
  const convertedFromFloat16 = new Set<string>();
  // A real UNet takes seconds to load: say which part is done so the user sees the wait move.
  const open = async (file: string) => {
    const part = file.split("/")[0];
    const resident = options.residentSessions !== "unet" || part === "unet";
    const opened = await sessionFileFor(root, part, {
      device,
      fp16OnCpu: options.fp16OnCpu ?? "convert",
      warn: options.warn ?? consoleLog.warn,
      onConverting: () => options.onProgress?.(loaded, MODEL_PARTS.length, conversionPhase(part)),
    });
    if (opened.convertedFromFloat16) convertedFromFloat16.add(part);
    const tuning = device === "cpu" && opened.float16 ? { ...FP16_ON_CPU, ...options.tuning } : options.tuning;
    // Errors name the export's file, whichever file onnxruntime opened.
    const session = await OnnxSession.create(opened.file, path.join(root, file), { ...sessionOptions, tuning, resident });
    options.onProgress?.(++loaded, MODEL_PARTS.length, part);
    return session;
  };

  const sessions: OnnxSession[] = [];
  try {
    const textEncoder = await open("text_encoder/model.onnx");
    sessions.push(textEncoder);
    const unet = await open("unet/model.onnx");
    sessions.push(unet);
    const vaeEncoder = await open("vae_encoder/model.onnx");
    sessions.push(vaeEncoder);
    const vaeDecoder = await open("vae_decoder/model.onnx");
    sessions.push(vaeDecoder);
    const tokenizer = await loadPooledTokenizer(root);

    const inputIds = expectOne(textEncoder, "input", ["input_ids"], ["int32", "int64"]);
    const hidden = expectOne(textEncoder, "output", ["last_hidden_state"], ["float32", "float16"]);
    const sample = expectOne(unet, "input", ["sample"], ["float32", "float16"]);
    const timestep = expectOne(unet, "input", ["timestep"], ["int64", "int32", "float32", "float16"]);
    const context = expectOne(unet, "input", ["encoder_hidden_states"], ["float32", "float16"]);
    expectOne(unet, "output", ["out_sample"], ["float32", "float16"]);
    expectOne(vaeEncoder, "input", ["sample"], ["float32", "float16"]);
    const latentOut = expectOne(vaeEncoder, "output", ["latent_parameters", "latent_sample"], ["float32", "float16"]);
    expectOne(vaeDecoder, "input", ["latent_sample"], ["float32", "float16"]);
    expectOne(vaeDecoder, "output", ["sample"], ["float32", "float16"]);

    // Exports name the channel dim instead of fixing it; then unet/config.json says, and without one
    // (diffusers' old converter) the pipeline class does: only inpainting pipelines ship a 9-channel UNet.
    const channels =
      numericDim(sample.shape[1]) ??
      (typeof unetConfig?.in_channels === "number" ? unetConfig.in_channels : /Inpaint/.test(String(modelIndex._class_name)) ? 9 : 4);
    if (channels !== 4 && channels !== 9) {
      throw new ModelLoadError(unet.file, `input "sample" has ${channels || "unknown"} channels; expected 9 (inpainting UNet) or 4 (plain UNet)`);
    }
    const hiddenSize = numericDim(hidden.shape[2]) ?? numericDim(context.shape[2]);
    if (hiddenSize === undefined) {
      throw new ModelLoadError(textEncoder.file, 'output "last_hidden_state" must declare its hidden size (last dim)');
    }
    const contextSize = numericDim(context.shape[2]);
    if (contextSize !== undefined && contextSize !== hiddenSize) {
      throw new ModelLoadError(unet.file, `input "encoder_hidden_states" has width ${contextSize}, but the text encoder gives ${hiddenSize}`);
    }
    return {
      info: {
        dir: root,
        unetInChannels: channels,
        hiddenSize,
        floatType: sample.type === "float16" || convertedFromFloat16.has("unet") ? "float16" : "float32",
        timestepType: timestep.type,
        unetBatchable: numericDim(sample.shape[0]) !== 1 && options.guidanceCalls !== "sequential",
        vaeEncoderOutput: latentOut.name as SdModelInfo["vaeEncoderOutput"],
        vaeScalingFactor: typeof vaeConfig.scaling_factor === "number" ? vaeConfig.scaling_factor : 0.18215,
        vaeScaleFactor,
        vaeTileSize: vaeTileSizeOf(vaeConfig, vaeScaleFactor),
        nativeSize: (positiveInteger(unetConfig?.sample_size) ?? 64) * vaeScaleFactor,
        inputIdsName: inputIds.name,
      },
      tokenizer,
      textEncoder,
      unet,
      vaeEncoder,
      vaeDecoder,
      schedulerConfig,
      async release() {
        await Promise.all(sessions.map((s) => s.release()));
      },
    };
  } catch (error) {
    await Promise.all(sessions.map((s) => s.release().catch(() => {})));
    throw error;
  }
}

/**
 * diffusers' vae_scale_factor: each VAE block but the last halves the picture, so a latent is
 * 2^(len(block_out_channels) − 1) pixels across; without a config (older exports) SD's 8.
 */
function vaeScaleFactorOf(vaeConfig: Record<string, unknown>, file: string): number {
  const blocks = vaeConfig.block_out_channels;
  if (blocks === undefined) return 8;
  if (!Array.isArray(blocks) || blocks.length < 1 || blocks.length > 8) {
    throw new ModelLoadError(
      file,
      `"block_out_channels" must be a list of 1 to 8 channel counts; got ${JSON.stringify(blocks)}`,
    );
  }
  return 2 ** (blocks.length - 1);
}

/**
 * The VAE's sample_size when a tile of it overlaps by a quarter on whole latents (a multiple of 4 latents);
 * otherwise, or without one, SD's 512 pixels.
 */
function vaeTileSizeOf(vaeConfig: Record<string, unknown>, vaeScaleFactor: number): number {
  const size = positiveInteger(vaeConfig.sample_size);
  if (size !== undefined && size % (4 * vaeScaleFactor) === 0) return size;
  return Math.max(512, 4 * vaeScaleFactor);
}

function positiveInteger(value: unknown): number | undefined {
  return typeof value === "number" && Number.isInteger(value) && value > 0 ? value : undefined;
}

function numericDim(dim: number | string | undefined): number | undefined {
  return typeof dim === "number" && dim > 0 ? dim : undefined;
}

function expectOne(session: OnnxSession, kind: "input" | "output", names: readonly string[], types: readonly string[]): ValueSpec {
  const values = kind === "input" ? session.inputs : session.outputs;
  const spec = names.map((name) => values.get(name)).find(Boolean);
  if (!spec) {
    throw new ModelLoadError(
      session.file,
      `expected an ${kind} named ${names.map((n) => `"${n}"`).join(" or ")}; it has ${[...values.keys()].map((n) => `"${n}"`).join(", ") || "none"}`,
    );
  }
  if (!types.includes(spec.type)) {
    throw new ModelLoadError(session.file, `${kind} "${spec.name}" is ${spec.type}; expected ${types.join(" or ")}`);
  }
  return spec;
}

async function readJson(root: string, file: string, optional: true): Promise<Record<string, unknown> | undefined>;
async function readJson(root: string, file: string): Promise<Record<string, unknown>>;
async function readJson(root: string, file: string, optional = false): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(root, file), "utf8");
  } catch {
    if (optional) return undefined;
    throw new ModelLoadError(path.join(root, file), "missing");
  }
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("not a JSON object");
    return value as Record<string, unknown>;
  } catch (error) {
    throw new ModelLoadError(path.join(root, file), `not valid JSON (${(error as Error).message})`);
  }
}
