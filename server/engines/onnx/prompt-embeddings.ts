/**
 * Text embeddings by prompt, per loaded model. The text encoder is deterministic, so a prompt seen before
 * gives the same numbers: a batch of pictures with one prompt (or a re-run with another seed) encodes it
 * once. On CPU the encoder's session is reopened for each run it is used in (only the UNet stays open,
 * README "Real-size models"), so a remembered prompt also saves that opening.
 */
import type { SdModel } from "./sd-model.ts";

/** Prompts remembered per model: SD 1.5's embedding is 77 × 768 floats (236 KB), so 32 hold 7.6 MB. */
const MAX_PROMPTS = 32;

const byModel = new WeakMap<SdModel, Map<string, Promise<Float32Array>>>();

/** The embedding of `text`, computed by `encode` the first time and remembered (least recently used out); read it, never change it. */
export function promptEmbedding(model: SdModel, text: string, encode: () => Promise<Float32Array>): Promise<Float32Array> {
  let cache = byModel.get(model);
  if (!cache) byModel.set(model, (cache = new Map()));
  let embedding = cache.get(text);
  if (embedding) {
    // Re-inserted: the most recently used is last in the map's order.
    cache.delete(text);
  } else {
    embedding = encode();
    // A failed encoding (an interrupted run) is not remembered.
    embedding.catch(() => {
      if (cache.get(text) === embedding) cache.delete(text);
    });
  }
  cache.set(text, embedding);
  while (cache.size > MAX_PROMPTS) cache.delete(cache.keys().next().value!);
  return embedding;
}
