/**
 * Learned object removal with LaMa on onnxruntime, with IOPaint's crop strategy: each separate part of the mask
 * (mask-regions.ts) gets a square around it (fill-crop.ts), cut from the original picture, resized to the model's
 * side, filled, resized back; only the masked pixels of each are pasted into the picture, in turn (the mask's value
 * is the paste's opacity, so a soft edge blends). Every unmasked pixel is the original's byte for byte. Resizing and
 * pasting run in sharp.
 */
import os from "node:os";
import type { OverlayOptions } from "sharp";
import path from "node:path";
import { fromSharp, maskFromSharp, maskToSharp, toSharp } from "../../../nodes/image/sharp-conversions.ts";
import { maskBounds } from "../../../nodes/mask/mask-bounds.ts";
import type { Mask, RgbImage } from "../../../nodes/socket-types.ts";
import { LAMA } from "../../models/helper-model-catalog.ts";
import { helperModelDir } from "../../models/helper-model-dir.ts";
import { resolveModelsDir } from "../../models/models-folder.ts";
import type { DeviceName } from "../onnx/onnx-session.ts";
import { type CropBox, cropAroundMask } from "./fill-crop.ts";
import { type LamaModel, loadLamaModel } from "./lama-model.ts";
import { maskRegions } from "./mask-regions.ts";

/** IOPaint's default hd_strategy_crop_margin. */
export const DEFAULT_FILL_MARGIN = 128;

export interface LearnedFillEngineOptions {
  readonly modelsDir?: string;
  readonly device?: DeviceName;
  readonly threads?: number;
}

export interface LearnedFillRequest {
  readonly picture: RgbImage;
  /** Above 0 = fill; the value is how much of the fill shows. Same size as the picture. */
  readonly mask: Mask;
  /** Pixels of context around the mask's box. */
  readonly margin?: number;
  /** A folder name under the models folder or a path; empty: models/lama. */
  readonly model?: string;
}

export interface LearnedFillResult {
  readonly image: RgbImage;
  /** The regions the model saw, one per part of the mask, in picture pixels; none when the mask was empty. */
  readonly crops: readonly CropBox[];
  readonly modelMs: number;
}

const UNIT = Float32Array.from({ length: 256 }, (_, byte) => byte / 255);

export class LearnedFillEngine {
  readonly modelsDir: string;
  readonly device: DeviceName;
  readonly threads: number;
  readonly #models = new Map<string, Promise<LamaModel>>();

  constructor(options: LearnedFillEngineOptions = {}) {
    this.modelsDir = path.resolve(options.modelsDir ?? resolveModelsDir(undefined));
    this.device = options.device ?? "cpu";
    this.threads = options.threads ?? os.availableParallelism();
  }

  modelDir(model?: string): string {
    return helperModelDir(model, LAMA.name, this.modelsDir);
  }

  model(model?: string): Promise<LamaModel> {
    const dir = this.modelDir(model);
    let loaded = this.#models.get(dir);
    if (!loaded) {
      loaded = loadLamaModel(dir, { device: this.device, threads: this.threads });
      this.#models.set(dir, loaded);
      loaded.catch(() => this.#models.delete(dir));
    }
    return loaded;
  }

  async fill(request: LearnedFillRequest): Promise<LearnedFillResult> {
    const { picture, mask } = request;
    if (picture.width !== mask.width || picture.height !== mask.height) {
      throw new Error(`mask is ${mask.width}×${mask.height} but the picture is ${picture.width}×${picture.height}; they must match`);
    }
    if (!maskBounds(mask)) return { image: picture, crops: [], modelMs: 0 };
    const model = await this.model(request.model);
    const crops = (await maskRegions(mask)).map((region) => cropAroundMask(region, request.margin ?? DEFAULT_FILL_MARGIN, picture.width, picture.height, model.size));
    const overlays: OverlayOptions[] = [];
    let modelMs = 0;
    for (const crop of crops) {
      const filled = await this.#fillCrop(model, picture, mask, crop);
      modelMs += filled.modelMs;
      overlays.push({ input: filled.overlay, raw: { width: crop.width, height: crop.height, channels: 4 }, left: crop.left, top: crop.top });
    }
    // In order, as IOPaint pastes its crops: where two squares overlap, the later one's masked pixels show.
    const image = await fromSharp(toSharp(picture).composite(overlays));
    return { image, crops, modelMs };
  }

  /** One crop filled: its pixels with the mask as alpha, ready to composite at the crop's place. */
  async #fillCrop(model: LamaModel, picture: RgbImage, mask: Mask, crop: CropBox): Promise<{ overlay: Buffer; modelMs: number }> {
    const size = model.size;
    const region = { left: crop.left, top: crop.top, width: crop.width, height: crop.height };
    const imageIn = await fromSharp(toSharp(picture).extract(region).resize({ width: size, height: size, fit: "fill" }));
    // Bilinear, then anything above 0 is hole: a hole shrunk to the model's scale still covers its edge pixels.
    const maskIn = await maskFromSharp(maskToSharp(mask).extract(region).resize({ width: size, height: size, fit: "fill", kernel: "linear" }));
    const plane = size * size;
    const imageTensor = new Float32Array(3 * plane);
    for (let c = 0; c < 3; c++) {
      for (let i = 0, j = c; i < plane; i++, j += 3) imageTensor[c * plane + i] = UNIT[imageIn.data[j]];
    }
    const maskTensor = new Float32Array(plane);
    for (let i = 0; i < plane; i++) maskTensor[i] = maskIn.data[i] > 0 ? 1 : 0;

    const started = performance.now();
    const out = await model.session.run(
      { image: { kind: "float", data: imageTensor, dims: [1, 3, size, size] }, mask: { kind: "float", data: maskTensor, dims: [1, 1, size, size] } },
      ["output"],
    );
    const modelMs = performance.now() - started;

    // Carve's export gives 0..255; rounded and clamped to bytes.
    const output = out.output.data;
    const filled = new Uint8Array(plane * 3);
    for (let c = 0; c < 3; c++) {
      for (let i = 0, j = c; i < plane; i++, j += 3) {
        const value = Math.round(output[c * plane + i]);
        filled[j] = value > 255 ? 255 : value > 0 ? value : 0;
      }
    }
    const back = await fromSharp(toSharp({ width: size, height: size, data: filled }).resize({ width: crop.width, height: crop.height, fit: "fill" }));
    const alpha = await maskFromSharp(maskToSharp(mask).extract(region));
    const overlay = await toSharp(back).joinChannel(Buffer.from(alpha.data), { raw: { width: crop.width, height: crop.height, channels: 1 } }).raw().toBuffer();
    return { overlay, modelMs };
  }

  async release(model?: string): Promise<void> {
    const dirs = model === undefined ? [...this.#models.keys()] : [this.modelDir(model)];
    for (const dir of dirs) {
      const loaded = this.#models.get(dir);
      this.#models.delete(dir);
      await loaded?.then((lama) => lama.release()).catch(() => {});
    }
  }
}

