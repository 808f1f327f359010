/**
 * Models as workflows name them: a checkpoint file in the models folder's checkpoints/ subfolder, or a model
 * folder (an ONNX export, a built import, a diffusers folder) directly in the models folder. A name is never a
 * path: a workflow from elsewhere cannot point the server at another file, and no answer shows the server's
 * folders.
 */
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { isSafeModelName } from "./models-folder.ts";

export const CHECKPOINTS_FOLDER = "checkpoints";
export const LORAS_FOLDER = "loras";
const CHECKPOINT_FILE = /\.(safetensors|ckpt)$/i;
/** Folders of the models folder that are not SD models: helper models and Maskflow's own caches. */
const NOT_SD_MODELS = new Set(["mobile-sam", "lama", "loras", "lcm-lora", CHECKPOINTS_FOLDER]);
const LORA_FILE = /\.safetensors$/i;

export class ModelNameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModelNameError";
  }
}

async function isFile(file: string): Promise<boolean> {
  return (await stat(file).catch(() => undefined))?.isFile() ?? false;
}

async function isModelFolder(dir: string): Promise<boolean> {
  return (await stat(path.join(dir, "model_index.json")).catch(() => undefined))?.isFile() ?? false;
}

/** What a CheckpointLoader may name: checkpoint files first, then model folders, each sorted. */
export async function listModelChoices(modelsDir: string): Promise<string[]> {
  const files = await readdir(path.join(modelsDir, CHECKPOINTS_FOLDER), { withFileTypes: true }).catch(() => []);
  const checkpoints = files.filter((entry) => entry.isFile() && CHECKPOINT_FILE.test(entry.name) && isSafeModelName(entry.name)).map((entry) => entry.name);
  const entries = await readdir(modelsDir, { withFileTypes: true }).catch(() => []);
  const folders: string[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || NOT_SD_MODELS.has(entry.name) || !isSafeModelName(entry.name)) continue;
    if (await isModelFolder(path.join(modelsDir, entry.name))) folders.push(entry.name);
  }
  return [...checkpoints.sort(), ...folders.sort()];
}

/** The file or folder a model name stands for; a ModelNameError that names no server path otherwise. */
export async function resolveModelName(modelsDir: string, name: string, input = "checkpoint"): Promise<string> {
  if (!isSafeModelName(name) || name.length > 255) {
    throw new ModelNameError(
      `${input}: ${JSON.stringify(name.slice(0, 80))} is not a model name: name a checkpoint file in the models folder's ` +
        `${CHECKPOINTS_FOLDER}/ subfolder or a model folder in the models folder (letters, digits, . _ -; no paths)`,
    );
  }
  const checkpoint = path.join(modelsDir, CHECKPOINTS_FOLDER, name);
  if (CHECKPOINT_FILE.test(name) && (await isFile(checkpoint))) return checkpoint;
  const folder = path.join(modelsDir, name);
  if (await isModelFolder(folder)) return folder;
  if (CHECKPOINT_FILE.test(name) && (await isFile(folder))) return folder;
  const installed = await listModelChoices(modelsDir);
  throw new ModelNameError(
    `${input}: no model ${JSON.stringify(name)} in the models folder (checkpoint files go in its ${CHECKPOINTS_FOLDER}/ subfolder); ` +
      (installed.length ? `installed: ${installed.slice(0, 20).join(", ")}` : "none is installed: add a .safetensors file there or run `maskflow models import`"),
  );
}

/** The LoRA files a LoraLoader may name: .safetensors files in the models folder's loras/ subfolder, sorted. */
export async function listLoraChoices(modelsDir: string): Promise<string[]> {
  const files = await readdir(path.join(modelsDir, LORAS_FOLDER), { withFileTypes: true }).catch(() => []);
  return files.filter((entry) => entry.isFile() && LORA_FILE.test(entry.name) && isSafeModelName(entry.name)).map((entry) => entry.name).sort();
}

/** The file a LoRA name stands for, in the models folder's loras/; a ModelNameError that names no server path otherwise. */
export async function resolveLoraName(modelsDir: string, name: string): Promise<string> {
  if (!isSafeModelName(name) || name.length > 255 || !LORA_FILE.test(name)) {
    throw new ModelNameError(
      `lora: ${JSON.stringify(name.slice(0, 80))} is not a LoRA name: name a .safetensors file in the models folder's ${LORAS_FOLDER}/ subfolder (letters, digits, . _ -; no paths)`,
    );
  }
  const file = path.join(modelsDir, LORAS_FOLDER, name);
  if (await isFile(file)) return file;
  const installed = await listLoraChoices(modelsDir);
  throw new ModelNameError(
    `lora: no LoRA ${JSON.stringify(name)} in the models folder's ${LORAS_FOLDER}/ subfolder; ` +
      (installed.length ? `installed: ${installed.slice(0, 20).join(", ")}` : "none is installed: put a .safetensors LoRA there"),
  );
}
