/**
 * A model's CLIP tokenizer on the compute pool's worker threads. Building its tables (vocab.json's 49,408
 * entries and merges.txt's 48,894 merges) took 300 ms of the event loop at each model load; a worker builds
 * them once and keeps them (see tokenizerInWorker), and each prompt is tokenized there too.
 */
import { runCompute } from "../../compute/compute-pool.ts";
import { ClipTokenizer, type ClipEncoding } from "./clip-tokenizer.ts";
import { tokenizerFolderOf } from "./clip-vocabulary.ts";

export interface PromptTokenizer {
  /** The folder its vocab.json and merges.txt come from. */
  readonly folder: string;
  encode(text: string): Promise<ClipEncoding>;
}

/** The tokenizer of a model folder (its own tokenizer/, else the shipped CLIP vocabulary), checked by one encoding. */
export async function loadPooledTokenizer(modelRoot: string): Promise<PromptTokenizer> {
  const folder = await tokenizerFolderOf(modelRoot);
  const tokenizer: PromptTokenizer = { folder, encode: (text) => runCompute("tokenize", { folder, text }) };
  // A broken vocabulary fails the model's load, not its first job.
  await tokenizer.encode("");
  return tokenizer;
}

/** A worker's tokenizers, by folder: a handful of folders at most, so the oldest goes past four. */
const loaded = new Map<string, Promise<ClipTokenizer>>();
const KEPT_TOKENIZERS = 4;

/** The worker's side: the folder's tokenizer, built on first use in this thread. */
export function tokenizerInWorker(folder: string): Promise<ClipTokenizer> {
  let tokenizer = loaded.get(folder);
  if (!tokenizer) {
    tokenizer = ClipTokenizer.fromFolder(folder);
    loaded.set(folder, tokenizer);
    tokenizer.catch(() => loaded.delete(folder));
    if (loaded.size > KEPT_TOKENIZERS) loaded.delete(loaded.keys().next().value!);
  }
  return tokenizer;
}
