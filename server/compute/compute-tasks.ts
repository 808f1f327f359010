/**
 * The CPU-bound work that runs on the compute pool's worker threads, by name. Each task is a pure
 * function of plain data (pictures, masks, numbers, a JSON document), so the same code runs in a test
 * on the main thread and here; the pixel arithmetic itself lives next to the node that needs it.
 */
import { move, transferableSymbol, valueSymbol } from "piscina";
import { exemplarInpaint } from "../../nodes/fill/exemplar-inpaint.ts";
import { teleaInpaint } from "../../nodes/fill/telea-inpaint.ts";
import { blendPixels, type BlendMode } from "../../nodes/image/blend-pixels.ts";
import { outpaintMask, type Padding } from "../../nodes/image/outpaint-mask.ts";
import { embedWorkflow } from "../../nodes/image/png-workflow-chunk.ts";
import { pasteBackBlend } from "../../nodes/inpaint/paste-back-blend.ts";
import { parseBoundedJson, type BoundedJsonOptions } from "../http/bounded-json.ts";
import { collectGarbage } from "./worker-heap.ts";
import { tokenizerInWorker } from "../engines/onnx/pooled-tokenizer.ts";
import { inpaintInputTensors, tensorToImage } from "../engines/onnx/image-tensors.ts";
import { blendIntoBox } from "../../nodes/mask/blend-into-box.ts";
import { type ColorMatchInput, matchColors } from "../../nodes/mask/color-match.ts";
import type { CropRegion } from "../../nodes/mask/crop-region.ts";
import { maskBounds } from "../../nodes/mask/mask-bounds.ts";
import { dilateMask, erodeMask } from "../../nodes/mask/square-morphology.ts";
import type { Mask, RgbImage } from "../../nodes/socket-types.ts";

/** A body this big leaves tens of megabytes or more of parsed objects behind in the worker. */
const LARGE_BODY_BYTES = 4 * 1024 * 1024;

export const COMPUTE_TASKS = {
  /** ClassicalFill: Criminisi's exemplar patches or Telea's fast marching. */
  classicalFill: ({ image, mask, radius, method }: { image: RgbImage; mask: Mask; radius: number; method: "patch" | "telea" }) =>
    method === "patch" ? exemplarInpaint(image, mask, radius) : teleaInpaint(image, mask, radius),
  /** SaveImage: the workflow as JSON in a tEXt chunk (JSON.stringify, escaping and CRCs of a big document). */
  embedWorkflow: ({ png, workflow }: { png: Uint8Array; workflow: unknown }) => embedWorkflow(png, workflow),
  /** GrowMask: square dilation (radius ≥ 0) or erosion (radius < 0). */
  growMask: ({ mask, pixels }: { mask: Mask; pixels: number }) => (pixels >= 0 ? dilateMask(mask, pixels) : erodeMask(mask, -pixels)),
  /** CropToMask: the bounding box of the mask's pixels above 0. */
  maskBounds: ({ mask }: { mask: Mask }) => maskBounds(mask) ?? null,
  /** PadImage: the outpainting mask with its feathered ramp. */
  outpaintMask: ({ width, height, pad, feather }: { width: number; height: number; pad: Padding; feather: number }) =>
    outpaintMask(width, height, pad, feather),
  /** Blend: a + (mode(a, b) − a) × factor for every byte. */
  blendPixels: ({ a, b, mode, factor }: { a: RgbImage; b: RgbImage; mode: BlendMode; factor: number }) => blendPixels(a, b, mode, factor),
  /** Stitch: the inpainted box mixed into the original through the feathered weights. */
  blendIntoBox: ({ original, patch, alpha, region }: { original: RgbImage; patch: RgbImage; alpha: Uint8Array; region: CropRegion }) =>
    blendIntoBox(original, patch, alpha, region),
  /** Inpaint's paste-back and Stitch: the repainted area's colours mapped to the original's on the ring around the mask. */
  colorMatch: (input: ColorMatchInput) => matchColors(input),
  /** A request body: JSON.parse of up to 60 MB, refused when its shape would be costly to carry back (json-shape.ts). */
  parseJson: ({ bytes, options }: { bytes: Uint8Array; options: BoundedJsonOptions }) => {
    const result = parseBoundedJson(bytes, options);
    if (bytes.byteLength >= LARGE_BODY_BYTES) collectGarbage();
    return result;
  },
  /** A prompt's CLIP token ids, with the folder's tables built once per worker. */
  tokenize: async ({ folder, text }: { folder: string; text: string }) => (await tokenizerInWorker(folder)).encode(text),
  /** Inpaint (local): the picture and mask as the VAE's and UNet's float tensors. */
  inpaintInputTensors: ({ image, mask }: { image: RgbImage; mask: Mask }) => inpaintInputTensors(image, mask),
  /** Inpaint (local): the VAE decoder's output as RGB bytes. */
  tensorToImage: ({ tensor, width, height }: { tensor: Float32Array; width: number; height: number }) => tensorToImage(tensor, width, height),
  /** Inpaint's paste-back: the original and the result mixed through the repainted area and its blurred ramp. */
  pasteBackBlend: ({ original, result, repainted, blurred }: { original: RgbImage; result: RgbImage; repainted: Mask; blurred?: Mask }) =>
    pasteBackBlend(original, result, repainted, blurred),
} as const;

export type ComputeTasks = typeof COMPUTE_TASKS;
export type ComputeTaskName = keyof ComputeTasks;
export type ComputeInput<Name extends ComputeTaskName> = Parameters<ComputeTasks[Name]>[0];
export type ComputeOutput<Name extends ComputeTaskName> = Awaited<ReturnType<ComputeTasks[Name]>>;

/** What the main thread posts: a task's name and its input. */
export interface ComputeRequest<Name extends ComputeTaskName = ComputeTaskName> {
  readonly task: Name;
  readonly input: ComputeInput<Name>;
}

/** Runs one task in the worker; its result's buffers are moved to the main thread, not copied. */
export function runComputeTask(request: ComputeRequest): unknown {
  const task = COMPUTE_TASKS[request.task] as ((input: ComputeInput<ComputeTaskName>) => unknown) | undefined;
  if (!task) throw new Error(`no compute task "${String(request.task)}"; the tasks are ${Object.keys(COMPUTE_TASKS).join(", ")}`);
  const result = task(request.input);
  const buffers = ownedBuffers(result);
  if (buffers.length === 0 || typeof result !== "object" || result === null) return result;
  return move({ [transferableSymbol]: buffers, [valueSymbol]: result });
}

/**
 * The ArrayBuffers a result holds whole. Only those are moved: a view onto part of a larger buffer
 * (a pooled Buffer, say) would take the rest of that buffer with it.
 */
function ownedBuffers(value: unknown, found: ArrayBuffer[] = [], depth = 0): ArrayBuffer[] {
  if (depth > 4 || value === null || typeof value !== "object") return found;
  if (ArrayBuffer.isView(value)) {
    const buffer = value.buffer;
    if (buffer instanceof ArrayBuffer && value.byteOffset === 0 && value.byteLength === buffer.byteLength && !found.includes(buffer)) {
      found.push(buffer);
    }
    return found;
  }
  for (const item of Array.isArray(value) ? value : Object.values(value)) ownedBuffers(item, found, depth + 1);
  return found;
}
