/**
 * Click-to-select: Segment Anything on onnxruntime, one loaded model per folder, the picture's embedding computed
 * once and kept (EmbeddingCache), each prompt answered by the decoder alone. The mask is the decoder's `masks`
 * logits at the picture's own size cut at 0 (SamPredictor's mask_threshold); with several candidate masks, the one
 * with the highest iou_prediction.
 */
import os from "node:os";
import path from "node:path";
import { resizeRgb } from "../../../nodes/image/sharp-conversions.ts";
import type { Mask, RgbImage } from "../../../nodes/socket-types.ts";
import { MOBILE_SAM } from "../../models/helper-model-catalog.ts";
import { helperModelDir } from "../../models/helper-model-dir.ts";
import { resolveModelsDir } from "../../models/models-folder.ts";
import type { DeviceName } from "../onnx/onnx-session.ts";
import { DEFAULT_EMBEDDING_CACHE_BYTES, type Embedding, EmbeddingCache } from "./embedding-cache.ts";
import { encoderInput } from "./sam-image-tensor.ts";
import { loadSamModel, SAM_LOW_RES_SIZE, type SamModel } from "./sam-model.ts";
import { promptProblem, promptTensors, resizedSize, type SamPrompt } from "./sam-prompt.ts";

export interface SegmentEngineOptions {
  /** Where `model` names are looked up; $MASKFLOW_MODELS_DIR or ./models by default. */
  readonly modelsDir?: string;
  readonly device?: DeviceName;
  readonly threads?: number;
  readonly cacheBytes?: number;
}

/**
 * A picture known by a key and its size, decoded only when its embedding is not cached: the route names a file in
 * the input folder, so a click on a picture already embedded neither decodes nor hashes it again.
 */
export interface PictureSource {
  /** Names these exact pixels (a file's path, size and modification time). */
  readonly key: string;
  readonly width: number;
  readonly height: number;
  load(): Promise<RgbImage>;
}

export interface SegmentRequest {
  /** The pixels (keyed by their sha256), or a source that loads them only if needed. */
  readonly picture: RgbImage | PictureSource;
  readonly prompt: SamPrompt;
  /** A folder name under the models folder or a path; empty: models/mobile-sam. */
  readonly model?: string;
}

export interface SegmentResult {
  /** 255 = selected, 0 = not, at the picture's size. */
  readonly mask: Mask;
  /** The decoder's iou_prediction for the mask it gave. */
  readonly score: number;
  /** Whether the embedding came from the cache (no encoder run). */
  readonly embeddingCached: boolean;
  readonly encoderMs: number;
  readonly decoderMs: number;
}

/** A prompt the decoder cannot take (no point, a point outside the picture): the caller's mistake, not the model's. */
export class SegmentPromptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SegmentPromptError";
  }
}

export class SegmentEngine {
  readonly modelsDir: string;
  readonly device: DeviceName;
  readonly threads: number;
  readonly embeddings: EmbeddingCache;
  readonly #models = new Map<string, Promise<SamModel>>();

  constructor(options: SegmentEngineOptions = {}) {
    this.modelsDir = path.resolve(options.modelsDir ?? resolveModelsDir(undefined));
    this.device = options.device ?? "cpu";
    this.threads = options.threads ?? os.availableParallelism();
    this.embeddings = new EmbeddingCache(options.cacheBytes ?? DEFAULT_EMBEDDING_CACHE_BYTES);
  }

  modelDir(model?: string): string {
    return helperModelDir(model, MOBILE_SAM.name, this.modelsDir);
  }

  /** The loaded model of a folder, loaded once however many ask at the same time; a failed load is not kept. */
  model(model?: string): Promise<SamModel> {
    const dir = this.modelDir(model);
    let loaded = this.#models.get(dir);
    if (!loaded) {
      loaded = loadSamModel(dir, { device: this.device, threads: this.threads });
      this.#models.set(dir, loaded);
      loaded.catch(() => this.#models.delete(dir));
    }
    return loaded;
  }

  async segment(request: SegmentRequest): Promise<SegmentResult> {
    const { prompt } = request;
    const picture = "data" in request.picture ? await pixelSource(request.picture) : request.picture;
    const problem = promptProblem(prompt, picture.width, picture.height);
    if (problem) throw new SegmentPromptError(problem);
    const model = await this.model(request.model);
    const key = `${model.dir}\0${picture.width}x${picture.height}\0${picture.key}`;
    let encoderMs = 0;
    const { embedding, cached } = this.embeddings.get(key, async () => {
      const pixels = await picture.load();
      if (pixels.width !== picture.width || pixels.height !== picture.height) {
        throw new Error(`the picture is ${pixels.width}×${pixels.height}, not the ${picture.width}×${picture.height} it was announced as`);
      }
      const started = performance.now();
      const result = await this.#embed(model, pixels);
      encoderMs = performance.now() - started;
      return result;
    });
    const features = await embedding;
    const started = performance.now();
    const { mask, score } = await this.#decode(model, features, picture, prompt);
    return { mask, score, embeddingCached: cached, encoderMs, decoderMs: performance.now() - started };
  }

  async #embed(model: SamModel, picture: RgbImage): Promise<Embedding> {
    const size = resizedSize(picture.width, picture.height);
    // ResizeLongestSide resizes with PIL's bilinear filter; sharp's linear kernel is the same interpolation.
    const resized = await resizeRgb(picture, size.width, size.height, "linear");
    const input = encoderInput(resized, model.encoderLayout);
    const out = await model.encoder.run({ [model.encoderInput]: { kind: "float", data: input.data, dims: input.dims } }, [model.embeddingName]);
    return out[model.embeddingName];
  }

  async #decode(model: SamModel, embedding: Embedding, picture: { readonly width: number; readonly height: number }, prompt: SamPrompt): Promise<{ mask: Mask; score: number }> {
    const { coords, labels, count } = promptTensors(prompt, picture.width, picture.height);
    const out = await model.decoder.run(
      {
        image_embeddings: { kind: "float", data: embedding.data, dims: embedding.dims },
        point_coords: { kind: "float", data: coords, dims: [1, count, 2] },
        point_labels: { kind: "float", data: labels, dims: [1, count] },
        mask_input: { kind: "float", data: new Float32Array(SAM_LOW_RES_SIZE * SAM_LOW_RES_SIZE), dims: [1, 1, SAM_LOW_RES_SIZE, SAM_LOW_RES_SIZE] },
        has_mask_input: { kind: "float", data: new Float32Array([0]), dims: [1] },
        orig_im_size: { kind: "float", data: new Float32Array([picture.height, picture.width]), dims: [2] },
      },
      ["masks", "iou_predictions"],
    );
    const masks = out.masks;
    const [, candidates, height, width] = masks.dims;
    if (height !== picture.height || width !== picture.width) {
      throw new Error(`${model.decoder.file}: gave masks of ${width}×${height} for a ${picture.width}×${picture.height} picture; expected the picture's size (orig_im_size)`);
    }
    const scores = out.iou_predictions.data;
    let best = 0;
    for (let i = 1; i < candidates; i++) if (scores[i] > scores[best]) best = i;
    const plane = width * height;
    const logits = masks.data.subarray(best * plane, (best + 1) * plane);
    const data = new Uint8Array(plane);
    for (let i = 0; i < plane; i++) data[i] = logits[i] > 0 ? 255 : 0;
    return { mask: { width, height, data }, score: scores[best] };
  }

  /** Frees the sessions (of one folder, or all) and their embeddings. */
  async release(model?: string): Promise<void> {
    const dirs = model === undefined ? [...this.#models.keys()] : [this.modelDir(model)];
    for (const dir of dirs) {
      const loaded = this.#models.get(dir);
      this.#models.delete(dir);
      this.embeddings.clear(`${dir}\0`);
      await loaded?.then((sam) => sam.release()).catch(() => {});
    }
  }
}

/** Keyed by the pixels' sha256, hashed by WebCrypto on libuv's threads: 8192² pixels are 200 MB to hash. */
async function pixelSource(picture: RgbImage): Promise<PictureSource> {
  // WebCrypto reads no shared memory: pixels in a SharedArrayBuffer are hashed from a copy.
  const bytes = picture.data.buffer instanceof ArrayBuffer ? (picture.data as Uint8Array<ArrayBuffer>) : picture.data.slice();
  const digest = Buffer.from(await crypto.subtle.digest("SHA-256", bytes)).toString("hex");
  return { key: `sha256:${digest}`, width: picture.width, height: picture.height, load: async () => picture };
}
