/**
 * CLIP's vocabulary and merges, shipped with Maskflow (see clip-vocabulary/LICENSE): every SD 1.5 model uses
 * this one tokenizer, so a model folder without tokenizer/ still works, `maskflow tokenize` works before any
 * model is installed, and the tiny test models are built from the real files.
 */
import { access } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const CLIP_VOCABULARY_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "clip-vocabulary");

/** The model's own tokenizer/ when it has one (its config may differ), else the shipped CLIP vocabulary. */
export async function tokenizerFolderOf(modelRoot: string): Promise<string> {
  const own = path.join(modelRoot, "tokenizer");
  try {
    await access(path.join(own, "vocab.json"));
    return own;
  } catch {
    return CLIP_VOCABULARY_DIR;
  }
}
