/**
 * The local engine: one loaded model per folder, shared by every job, loaded on first use and freed on
 * request. Requests are checked before any model loads, so a bad width never costs a load.
 */
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { checkInpaintRequest, type InpaintHooks, type InpaintRequest, type InpaintResult, runInpaintPipeline } from "./inpaint-pipeline.ts";
import { type Fp16OnCpu, FP16_ON_CPU_VARIABLE, parseFp16OnCpu } from "./fp32-cache.ts";
import { type DeviceName, ModelLoadError, type SessionTuning } from "./onnx-session.ts";
import { type GuidanceCalls, loadSdModel, MODEL_PARTS, type ResidentSessions, type SdModel } from "./sd-model.ts";
import { WARM_UP_PHASE, warmUpUnet } from "./unet-warm-up.ts";
import { BUILT_MODELS_FOLDER, CHECKPOINT_FILE_PATTERN, buildCheckpoint, describeBuildProgress, isCheckpointSource } from "../../models/checkpoint/built-model-cache.ts";
import { resolveModelsDir } from "../../models/models-folder.ts";
import { readBuildStamp } from "../../models/checkpoint/build-stamp.ts";
import { type LoraUse, type ModelRecipe, plainRecipe, recipeKey } from "../../models/checkpoint/model-recipe.ts";

export const DEFAULT_MODEL_DIR = "models/sd15-inpainting";
/**
 * On CPU a real-size SD 1.5 peaks at 13.3 GB with every session held, batched guidance and onnxruntime's
 * arena; two guidance calls (4 % slower a step), only the UNet held (the others reopen per run, about 1.5 s
 * a job) and no arena bring it under 6 GB (README, "Real-size models"). A GPU keeps the faster batched call
 * and its sessions: its memory is the card's, not the host's.
 */
export function defaultGuidanceCalls(device: DeviceName): GuidanceCalls {
  return device === "cpu" ? "sequential" : "batched";
}

export function defaultResidentSessions(device: DeviceName): ResidentSessions {
  return device === "cpu" ? "unet" : "all";
}

export interface OnnxEngineOptions {
  /** Used when a node names no model: --model, MASKFLOW_MODEL_DIR, else models/sd15-inpainting. */
  readonly defaultModelDir?: string;
  readonly device?: DeviceName;
  readonly threads?: number;
  /** onnxruntime memory settings; the defaults suit real-size models (see SessionTuning). */
  readonly tuning?: Partial<SessionTuning>;
  /** Guided jobs: uncond and cond in one batched UNet call, or two calls at half the activation memory. */
  readonly guidanceCalls?: GuidanceCalls;
  /** Which sessions stay open between runs: all, or only the UNet (the others reopen per run, a second or two a job). */
  readonly residentSessions?: ResidentSessions;
  /** fp16 exports on CPU: converted to fp32 once and cached in the model folder, or opened as they are; default MASKFLOW_FP16_ON_CPU, else "convert". */
  readonly fp16OnCpu?: Fp16OnCpu;
  /** The models folder: where model names resolve ($MASKFLOW_MODELS_DIR or ./models by default). */
  readonly modelsDir?: string;
  /** Where graphs built from checkpoints are kept, by content: <models folder>/.built by default. */
  readonly builtModelsDir?: string;
  /** LoRAs on the server's own model (`--lora`), for nodes that name no model. */
  readonly defaultLoras?: readonly LoraUse[];
}

/**
 * Loading reports each session as it arrives (part = its folder), conversionPhase(part) before an fp16 part is
 * converted for the CPU (first load only), then WARM_UP_PHASE while the UNet warms up.
 */
export type LoadProgressListener = (loaded: number, total: number, part: string) => void;

export interface LocalInpaintOptions extends InpaintHooks {
  readonly modelDir?: string;
  /** A recipe (a checkpoint with LoRAs or a merge) instead of a folder; takes precedence over modelDir. */
  readonly model?: ModelRecipe;
  /** While the model loads (first use only): sessions loaded so far. */
  onLoad?: LoadProgressListener;
}

export interface LocalInpaintEngine {
  inpaint(request: InpaintRequest, options: LocalInpaintOptions): Promise<InpaintResult>;
  /** The models folder that model names resolve in. */
  readonly modelsDir?: string;
  /** Builds a recipe's graphs (or finds them built) ahead of its first job; returns the folder to open. */
  prepare?(model: string | ModelRecipe, onProgress?: LoadProgressListener): Promise<string>;
}

export class OnnxEngine implements LocalInpaintEngine {
  #defaultModelDir: string;
  readonly device: DeviceName;
  readonly threads: number;
  readonly tuning: Partial<SessionTuning>;
  readonly guidanceCalls: GuidanceCalls;
  readonly residentSessions: ResidentSessions;
  readonly fp16OnCpu: Fp16OnCpu;
  readonly modelsDir: string;
  readonly builtModelsDir: string;
  readonly defaultLoras: readonly LoraUse[];
  readonly #models = new Map<string, Promise<SdModel>>();
  readonly #loadListeners = new Map<string, Set<LoadProgressListener>>();
  /** Pipelines running on each model: release() waits for them, so freeing never pulls sessions from under a job. */
  readonly #runs = new Map<Promise<SdModel>, Set<Promise<InpaintResult>>>();

  constructor(options: OnnxEngineOptions = {}) {
    this.#defaultModelDir = path.resolve(options.defaultModelDir ?? process.env.MASKFLOW_MODEL_DIR ?? DEFAULT_MODEL_DIR);
    this.device = parseDevice(options.device ?? process.env.MASKFLOW_DEVICE ?? "cpu");
    this.threads = options.threads ?? os.availableParallelism();
    this.tuning = options.tuning ?? {};
    this.guidanceCalls = options.guidanceCalls ?? defaultGuidanceCalls(this.device);
    this.residentSessions = options.residentSessions ?? defaultResidentSessions(this.device);
    this.fp16OnCpu = options.fp16OnCpu ?? parseFp16OnCpu(process.env[FP16_ON_CPU_VARIABLE]);
    this.modelsDir = path.resolve(options.modelsDir ?? resolveModelsDir(undefined));
    this.builtModelsDir = path.resolve(options.builtModelsDir ?? path.join(this.modelsDir, BUILT_MODELS_FOLDER));
    this.defaultLoras = options.defaultLoras ?? [];
  }

  get defaultModelDir(): string {
    return this.#defaultModelDir;
  }

  /** Points nodes that name no model at another folder: a model pulled from the editor while the server runs. */
  useDefaultModelDir(dir: string): void {
    this.#defaultModelDir = path.resolve(dir);
  }

  /**
   * The loaded model of a folder, loading it once however many jobs ask at the same time; each asker
   * hears the load's progress (sessions loaded out of four) while it lasts.
   */
  model(source?: string | ModelRecipe, onLoadProgress?: LoadProgressListener): Promise<SdModel> {
    const recipe = this.#recipeOf(source);
    const key = recipeKey(recipe);
    let model = this.#models.get(key);
    if (!model) {
      const listeners = new Set<LoadProgressListener>();
      this.#loadListeners.set(key, listeners);
      const notify: LoadProgressListener = (loaded, total, part) => {
        for (const listener of listeners) {
          try {
            listener(loaded, total, part);
          } catch {
            // One asker's listener (an interrupted job's progress check) must not fail the load others share.
          }
        }
      };
      model = this.#modelFolder(recipe, notify).then((folder) => loadSdModel(folder, { device: this.device, threads: this.threads, tuning: this.tuning, guidanceCalls: this.guidanceCalls, residentSessions: this.residentSessions, fp16OnCpu: this.fp16OnCpu, onProgress: notify })).then(async (loaded) => {
        // The first UNet call is two to three times a steady one: pay it here, not in the user's first step.
        notify(MODEL_PARTS.length, MODEL_PARTS.length, WARM_UP_PHASE);
        try {
          await warmUpUnet(loaded);
        } catch (error) {
          await loaded.release().catch(() => {});
          throw new ModelLoadError(loaded.unet.file, `the warm-up call at the model's own size failed: ${error instanceof Error ? error.message : String(error)}`);
        }
        return loaded;
      });
      this.#models.set(key, model);
      model.catch(() => this.#models.delete(key)).finally(() => this.#loadListeners.delete(key));
    }
    if (onLoadProgress) this.#loadListeners.get(key)?.add(onLoadProgress);
    return model;
  }

  /**
   * The ONNX folder to open for a model: itself, or for a checkpoint (a .safetensors/.ckpt file or a diffusers
   * folder) the graphs built from it, built on first use on a worker thread and kept by content.
   */
  async #modelFolder(recipe: ModelRecipe, notify: LoadProgressListener): Promise<string> {
    const changed = recipe.loras.length > 0 || recipe.merge !== undefined;
    let source = recipe.checkpoint;
    if (!(await isCheckpointSource(source))) {
      if (!changed) return source;
      // A folder Maskflow built (an import, a pull) remembers its checkpoint: LoRAs and merges start from that.
      const stamp = await readBuildStamp(source);
      if (!stamp || !(await isCheckpointSource(stamp.source))) {
        throw new ModelLoadError(
          source,
          "LoRAs and merges change a checkpoint's weights, and this is an ONNX export: load a .safetensors/.ckpt checkpoint or a diffusers folder instead",
        );
      }
      source = stamp.source;
    }
    const result = await buildCheckpoint(
      {
        source,
        cacheRoot: this.builtModelsDir,
        loras: recipe.loras,
        merge: recipe.merge && { inpainting: recipe.merge.inpainting.checkpoint, base: recipe.merge.base.checkpoint, multiplier: recipe.merge.multiplier },
      },
      { onProgress: (progress) => notify(progress.done, progress.total, describeBuildProgress(progress)) },
    );
    return result.dir;
  }

  /** A folder or file path is the plain recipe of it; no model: the server's, with the server-wide LoRAs (--lora). */
  #recipeOf(source: string | ModelRecipe | undefined): ModelRecipe {
    if (typeof source === "object") return { ...source, checkpoint: path.resolve(source.checkpoint) };
    if (source) return plainRecipe(path.resolve(source));
    return { checkpoint: this.defaultModelDir, loras: this.defaultLoras };
  }

  /**
   * Makes a model ready to open without opening it: a checkpoint is built (or its earlier build found), with
   * progress; an ONNX folder is returned as it is. CheckpointLoader calls this so the build shows on its node.
   */
  async prepare(model: string | ModelRecipe, onProgress?: LoadProgressListener): Promise<string> {
    return this.#modelFolder(this.#recipeOf(model), onProgress ?? (() => {}));
  }

  async inpaint(request: InpaintRequest, options: LocalInpaintOptions = {}): Promise<InpaintResult> {
    checkInpaintRequest(request);
    const loading = this.model(options.model ?? options.modelDir, options.onLoad);
    const model = await loading;
    const run = runInpaintPipeline(model, request, options);
    const runs = this.#runs.get(loading) ?? new Set();
    this.#runs.set(loading, runs);
    runs.add(run);
    try {
      return await run;
    } finally {
      runs.delete(run);
      if (runs.size === 0) this.#runs.delete(loading);
    }
  }

  /** Frees the sessions of one folder, or of all, once the jobs running on them have finished; later jobs load afresh. */
  async release(dir?: string): Promise<void> {
    const keys = dir ? [path.resolve(dir)] : [...this.#models.keys()];
    for (const key of keys) {
      const model = this.#models.get(key);
      if (!model) continue;
      this.#models.delete(key);
      await model
        .then(async (loaded) => {
          await Promise.allSettled(this.#runs.get(model) ?? []);
          await loaded.release();
        })
        .catch(() => {});
    }
  }

  status(): { summary: string; defaultModelDir: string; installed: boolean; device: DeviceName; loaded: string[] } {
    const installed =
      existsSync(path.join(this.defaultModelDir, "model_index.json")) ||
      (CHECKPOINT_FILE_PATTERN.test(this.defaultModelDir) && existsSync(this.defaultModelDir));
    return {
      summary: installed
        ? `local ONNX model at ${this.defaultModelDir} (device ${this.device})`
        : `no local model at ${this.defaultModelDir}: run \`maskflow models pull\` or set MASKFLOW_MODEL_DIR`,
      defaultModelDir: this.defaultModelDir,
      installed,
      device: this.device,
      loaded: [...this.#models.keys()],
    };
  }
}

export function parseDevice(value: string): DeviceName {
  if (value === "cpu" || value === "cuda") return value;
  throw new Error(`device must be "cpu" or "cuda", got "${value}"`);
}
