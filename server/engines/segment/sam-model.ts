/**
 * A Segment Anything (SAM, MobileSAM) model folder: an image encoder and segment-anything's ONNX prompt decoder,
 * found by their file names, opened, and checked against the layout the engine feeds, every problem named.
 *
 * Encoders come in two layouts, told apart by the rank of their one input:
 * - "padded": `image` (or `images`, `input_image`) 1×3×1024×1024, the picture resized so its longest side is 1024,
 *   normalized with SAM's pixel mean and std and zero-padded bottom and right by the caller (samexporter, a plain
 *   torch.onnx.export of sam.image_encoder);
 * - "resized": `input_image` H×W×3, RGB 0..255 at the resized size, normalized and padded inside the graph
 *   (Acly/MobileSAM's export_image_encoder.py, which Maskflow pulls).
 * Either gives `image_embeddings` 1×256×64×64. The decoder is scripts/export_onnx_model.py's: image_embeddings,
 * point_coords 1×N×2, point_labels 1×N, mask_input 1×1×256×256, has_mask_input 1, orig_im_size 2 → masks
 * 1×C×H×W (logits at orig_im_size), iou_predictions 1×C, low_res_masks 1×C×256×256.
 */
import { readdir, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { FolderProblem } from "../../models/model-layout.ts";
import { type DeviceName, ModelLoadError, OnnxSession } from "../onnx/onnx-session.ts";
import { ModelLayoutError, sessionProblems, valueProblem, type ExpectedValue } from "../onnx/value-layout.ts";

/** The side SAM's image encoder works at (ResizeLongestSide's target length). */
export const SAM_IMAGE_SIZE = 1024;
export const SAM_LOW_RES_SIZE = 256;
/** segment-anything's Sam.pixel_mean and pixel_std (ImageNet's, in 0..255). */
export const SAM_PIXEL_MEAN = [123.675, 116.28, 103.53] as const;
export const SAM_PIXEL_STD = [58.395, 57.12, 57.375] as const;

export type SamEncoderLayout = "padded" | "resized";

export interface SamModel {
  readonly dir: string;
  readonly encoder: OnnxSession;
  readonly decoder: OnnxSession;
  readonly encoderLayout: SamEncoderLayout;
  readonly encoderInput: string;
  readonly embeddingName: string;
  /** The embedding's declared dims (1×256×64×64 for SAM and MobileSAM). */
  readonly embeddingDims: readonly number[];
  release(): Promise<void>;
}

const ENCODER_INPUT_NAMES = ["image", "images", "input_image"];
const EMBEDDING_NAMES = ["image_embeddings", "embeddings"];
const WHAT = "a Segment Anything model (an image encoder and segment-anything's ONNX prompt decoder)";

const DECODER_INPUTS: readonly ExpectedValue[] = [
  { name: "image_embeddings", dims: [1, 256, 64, 64] },
  { name: "point_coords", dims: [1, "num_points", 2] },
  { name: "point_labels", dims: [1, "num_points"] },
  { name: "mask_input", dims: [1, 1, SAM_LOW_RES_SIZE, SAM_LOW_RES_SIZE] },
  { name: "has_mask_input", dims: [1] },
  { name: "orig_im_size", dims: [2] },
];
const DECODER_OUTPUTS: readonly ExpectedValue[] = [
  { name: "masks", dims: [1, "masks", "height", "width"] },
  { name: "iou_predictions", dims: [1, "masks"] },
  { name: "low_res_masks", dims: [1, "masks", SAM_LOW_RES_SIZE, SAM_LOW_RES_SIZE] },
];

/** The encoder and decoder files of a folder: names containing "encoder" and "decoder" ("single" preferred among decoders). */
export async function findSamFiles(dir: string): Promise<{ encoder?: string; decoder?: string; problems: FolderProblem[] }> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => name.toLowerCase().endsWith(".onnx")).sort();
  } catch {
    return { problems: [{ path: ".", detail: `no such folder: ${dir}; pull one with \`maskflow models pull mobile-sam\`` }] };
  }
  const problems: FolderProblem[] = [];
  const encoders = names.filter((name) => /encoder/i.test(name));
  let decoders = names.filter((name) => /decoder/i.test(name));
  if (decoders.length > 1 && decoders.some((name) => /single/i.test(name))) decoders = decoders.filter((name) => /single/i.test(name));
  if (encoders.length !== 1) {
    problems.push({ path: ".", detail: encoders.length ? `several image encoders (${encoders.join(", ")}); keep one` : `no image encoder: expected a *encoder*.onnx file (e.g. mobile_sam_image_encoder.onnx); found ${names.join(", ") || "no .onnx file"}` });
  }
  if (decoders.length !== 1) {
    problems.push({ path: ".", detail: decoders.length ? `several prompt decoders (${decoders.join(", ")}); keep one` : `no prompt decoder: expected a *decoder*.onnx file (e.g. sam_mask_decoder_single.onnx); found ${names.join(", ") || "no .onnx file"}` });
  }
  return { encoder: encoders.length === 1 ? path.join(dir, encoders[0]) : undefined, decoder: decoders.length === 1 ? path.join(dir, decoders[0]) : undefined, problems };
}

function dimsOf(shape: readonly (number | string)[]): number[] {
  return shape.map((dim) => (typeof dim === "number" && dim > 0 ? dim : 0));
}

/** Every problem of an opened encoder, and its layout when it has one. */
function checkEncoder(encoder: OnnxSession, root: string): { problems: FolderProblem[]; layout?: SamEncoderLayout; input?: string; output?: string } {
  const file = path.relative(root, encoder.file).split(path.sep).join("/");
  const problems: FolderProblem[] = [];
  const inputs = [...encoder.inputs.values()];
  const input = inputs.find((value) => ENCODER_INPUT_NAMES.includes(value.name));
  let layout: SamEncoderLayout | undefined;
  if (inputs.length !== 1 || !input) {
    problems.push({ path: file, detail: `expected one input named ${ENCODER_INPUT_NAMES.map((n) => `"${n}"`).join(" or ")}; the file's inputs are ${inputs.map((v) => `"${v.name}"`).join(", ") || "none"}` });
  } else if (input.shape.length === 4) {
    const detail = valueProblem(encoder, "input", { name: input.name, dims: [1, 3, SAM_IMAGE_SIZE, SAM_IMAGE_SIZE] });
    if (detail) problems.push({ path: file, detail: `${detail} (a picture resized to 1024 on its longest side, normalized and padded)` });
    else layout = "padded";
  } else if (input.shape.length === 3) {
    const detail = valueProblem(encoder, "input", { name: input.name, dims: ["height", "width", 3] });
    if (detail) problems.push({ path: file, detail: `${detail} (RGB 0..255 resized to 1024 on its longest side)` });
    else layout = "resized";
  } else {
    problems.push({ path: file, detail: `input "${input.name}" has ${input.shape.length} dimensions; expected 1×3×1024×1024 (normalized and padded) or H×W×3 (RGB 0..255)` });
  }
  const output = [...encoder.outputs.values()].find((value) => EMBEDDING_NAMES.includes(value.name));
  if (!output) {
    problems.push({ path: file, detail: `expected an output named "image_embeddings" [1, 256, 64, 64]; the file's outputs are ${[...encoder.outputs.keys()].map((n) => `"${n}"`).join(", ") || "none"}` });
  } else {
    const detail = valueProblem(encoder, "output", { name: output.name, dims: [1, 256, 64, 64] });
    if (detail) problems.push({ path: file, detail });
  }
  return { problems, layout, input: input?.name, output: output?.name };
}

/** Opens and checks a folder; throws ModelLayoutError naming every problem, ModelLoadError when a file does not open. */
export async function loadSamModel(dir: string, options: { device?: DeviceName; threads?: number } = {}): Promise<SamModel> {
  const root = path.resolve(dir);
  const files = await findSamFiles(root);
  if (!files.encoder || !files.decoder) throw new ModelLayoutError(root, files.problems, WHAT);
  const sessionOptions = { device: options.device ?? "cpu", threads: options.threads ?? os.availableParallelism() };
  for (const file of [files.encoder, files.decoder]) {
    if ((await stat(file)).size === 0) throw new ModelLoadError(file, "empty; pull the model again");
  }
  const encoder = await OnnxSession.create(files.encoder, files.encoder, sessionOptions);
  let decoder: OnnxSession;
  try {
    decoder = await OnnxSession.create(files.decoder, files.decoder, sessionOptions);
  } catch (error) {
    await encoder.release();
    throw error;
  }
  const encoderCheck = checkEncoder(encoder, root);
  const problems = [...encoderCheck.problems, ...sessionProblems(decoder, root, DECODER_INPUTS, DECODER_OUTPUTS)];
  if (problems.length || !encoderCheck.layout || !encoderCheck.input || !encoderCheck.output) {
    await Promise.all([encoder.release(), decoder.release()]);
    throw new ModelLayoutError(root, problems, WHAT);
  }
  const embeddingDims = dimsOf(encoder.outputs.get(encoderCheck.output)!.shape).map((dim, i) => dim || [1, 256, 64, 64][i]);
  return {
    dir: root,
    encoder,
    decoder,
    encoderLayout: encoderCheck.layout,
    encoderInput: encoderCheck.input,
    embeddingName: encoderCheck.output,
    embeddingDims,
    async release() {
      await Promise.all([encoder.release(), decoder.release()]);
    },
  };
}
