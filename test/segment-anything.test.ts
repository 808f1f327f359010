import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SegmentAnythingNode } from "../nodes/mask/segment-anything.ts";
import type { Mask, RgbImage } from "../nodes/socket-types.ts";
import { ModelLayoutError } from "../server/engines/onnx/value-layout.ts";
import { SegmentEngine } from "../server/engines/segment/segment-engine.ts";
import { promptTensors, resizedSize } from "../server/engines/segment/sam-prompt.ts";
import { ensureTinyHelperModels, TINY_SAM_FILES, type TinyHelperModelFolders } from "./fixtures/make-tiny-helper-models.ts";
import { attr, float32Tensor, int64Tensor, OnnxGraphBuilder } from "../server/engines/onnx/graph/onnx-graph-builder.ts";
import { createTestContext } from "./helpers/node-context.ts";

interface Rect {
  readonly left: number;
  readonly top: number;
  readonly right: number;
  readonly bottom: number;
}

/** A blue picture with red rectangles on it: the objects to click. */
function picture(width: number, height: number, objects: readonly Rect[]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inside = objects.some((r) => x >= r.left && x < r.right && y >= r.top && y < r.bottom);
      data.set(inside ? [220, 40, 30] : [30, 60, 210], (y * width + x) * 3);
    }
  }
  return { width, height, data };
}

/** Intersection over union of the mask's white pixels with a rectangle. */
function iou(mask: Mask, rect: Rect): number {
  let both = 0;
  let either = 0;
  for (let y = 0; y < mask.height; y++) {
    for (let x = 0; x < mask.width; x++) {
      const inRect = x >= rect.left && x < rect.right && y >= rect.top && y < rect.bottom;
      const inMask = mask.data[y * mask.width + x] === 255;
      if (inRect && inMask) both++;
      if (inRect || inMask) either++;
    }
  }
  return both / either;
}

function whiteCount(mask: Mask, rect: Rect): number {
  let count = 0;
  for (let y = rect.top; y < rect.bottom; y++) for (let x = rect.left; x < rect.right; x++) if (mask.data[y * mask.width + x] === 255) count++;
  return count;
}

let folders: TinyHelperModelFolders;
const engines: SegmentEngine[] = [];
function engine(options: ConstructorParameters<typeof SegmentEngine>[0] = {}): SegmentEngine {
  const created = new SegmentEngine({ threads: 1, ...options });
  engines.push(created);
  return created;
}

beforeAll(async () => {
  folders = await ensureTinyHelperModels();
});
afterAll(async () => {
  await Promise.all(engines.map((e) => e.release()));
});

describe("SAM's prompt arithmetic", () => {
  it("resizes the longest side to 1024, rounding half up, as ResizeLongestSide", () => {
    expect(resizedSize(1500, 1000)).toEqual({ width: 1024, height: 683 });
    expect(resizedSize(300, 200)).toEqual({ width: 1024, height: 683 });
    expect(resizedSize(200, 200)).toEqual({ width: 1024, height: 1024 });
  });

  it("scales clicks into the 1024 frame, pads with (0, 0) labelled −1 without a box, and labels box corners 2 and 3", () => {
    const clicks = promptTensors({ points: [{ x: 150, y: 100, positive: true }, { x: 30, y: 20, positive: false }] }, 300, 200);
    expect([...clicks.labels]).toEqual([1, 0, -1]);
    expect(clicks.coords[0]).toBeCloseTo(512, 3);
    expect(clicks.coords[1]).toBeCloseTo(341.5, 3);
    const boxed = promptTensors({ points: [], box: { left: 0, top: 0, right: 300, bottom: 200 } }, 300, 200);
    expect([...boxed.labels]).toEqual([2, 3]);
    expect(boxed.coords[2]).toBeCloseTo(1024, 3);
    expect(boxed.coords[3]).toBeCloseTo(683, 3);
  });
});

describe.each([
  ["Acly/MobileSAM layout (input_image H×W×3, normalizes and pads inside)", "samAcly"],
  ["padded layout (image 1×3×1024×1024, normalized and padded here)", "samPadded"],
] as const)("Segment Anything, %s", (_label, which) => {
  const object: Rect = { left: 60, top: 50, right: 160, bottom: 130 };

  it("a click on the object gives the object's mask at the picture's size", async () => {
    const sam = engine();
    const result = await sam.segment({ picture: picture(300, 200, [object]), prompt: { points: [{ x: 110, y: 90, positive: true }] }, model: folders[which] });
    expect(result.mask.width).toBe(300);
    expect(result.mask.height).toBe(200);
    expect(iou(result.mask, object)).toBeGreaterThan(0.85);
    expect(result.embeddingCached).toBe(false);
  });

  it("a negative click leaves out a second object of the same colour", async () => {
    const second: Rect = { left: 200, top: 40, right: 270, bottom: 120 };
    const sam = engine();
    const scene = picture(300, 200, [object, second]);
    const both = await sam.segment({ picture: scene, prompt: { points: [{ x: 110, y: 90, positive: true }] }, model: folders[which] });
    expect(whiteCount(both.mask, second)).toBeGreaterThan(0.8 * 70 * 80);
    const one = await sam.segment({ picture: scene, prompt: { points: [{ x: 110, y: 90, positive: true }, { x: 235, y: 80, positive: false }] }, model: folders[which] });
    expect(whiteCount(one.mask, second)).toBe(0);
    // The second prompt reused the picture's embedding.
    expect(one.embeddingCached).toBe(true);
  });

  it("a box selects what is inside it", async () => {
    const box: Rect = { left: 40, top: 30, right: 200, bottom: 170 };
    const sam = engine();
    const result = await sam.segment({ picture: picture(300, 200, [object]), prompt: { points: [], box }, model: folders[which] });
    expect(iou(result.mask, box)).toBeGreaterThan(0.85);
  });
});

describe("the embedding cache", () => {
  it("runs the encoder once per picture, and evicts the least recently used past its size", async () => {
    // Room for one 1×256×64×64 embedding (4 MiB) only.
    const sam = engine({ cacheBytes: 5 * 1024 * 1024 });
    const first = picture(120, 80, [{ left: 10, top: 10, right: 50, bottom: 50 }]);
    const second = picture(120, 80, [{ left: 60, top: 20, right: 100, bottom: 60 }]);
    const click = { points: [{ x: 30, y: 30, positive: true }] };
    expect((await sam.segment({ picture: first, prompt: click, model: folders.samAcly })).embeddingCached).toBe(false);
    expect((await sam.segment({ picture: first, prompt: { points: [{ x: 20, y: 20, positive: true }] }, model: folders.samAcly })).embeddingCached).toBe(true);
    expect((await sam.segment({ picture: second, prompt: click, model: folders.samAcly })).embeddingCached).toBe(false);
    expect(sam.embeddings.size).toBe(1);
    expect(sam.embeddings.bytes).toBe(256 * 64 * 64 * 4);
    expect((await sam.segment({ picture: first, prompt: click, model: folders.samAcly })).embeddingCached).toBe(false);
    expect(sam.embeddings.misses).toBe(3);
    expect(sam.embeddings.hits).toBe(1);
  });
});

describe("a multi-mask decoder", () => {
  it("gives the candidate with the highest iou_prediction (sam_mask_decoder_multi's 1×C masks)", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-sam-multi-"));
    const { copyFile } = await import("node:fs/promises");
    await copyFile(path.join(folders.samAcly, TINY_SAM_FILES.acly.encoder), path.join(dir, TINY_SAM_FILES.acly.encoder));
    // Three candidates: all background, all object, all background; the second has the best score.
    const graph = new OnnxGraphBuilder("multi_decoder");
    graph.input("image_embeddings", "float32", [1, 256, 64, 64]);
    graph.input("point_coords", "float32", [1, "num_points", 2]);
    graph.input("point_labels", "float32", [1, "num_points"]);
    graph.input("mask_input", "float32", [1, 1, 256, 256]);
    graph.input("has_mask_input", "float32", [1]);
    const size = graph.input("orig_im_size", "float32", [2]);
    graph.output("masks", "float32", [1, 3, "height", "width"]);
    graph.output("iou_predictions", "float32", [1, 3]);
    graph.output("low_res_masks", "float32", [1, 3, 256, 256]);
    const logits = graph.initializer("candidate_logits", float32Tensor([1, 3, 1, 1], [-1, 1, -1]));
    const shape = graph.node("Concat", [graph.initializer("batch_candidates", int64Tensor([2], [1, 3])), graph.node("Cast", [size], { to: attr.int(7) })], { axis: attr.int(0) });
    graph.node("Expand", [logits, shape], {}, "masks");
    graph.node("Identity", [graph.initializer("scores", float32Tensor([1, 3], [0.1, 0.9, 0.5]))], {}, "iou_predictions");
    graph.node("Expand", [logits, graph.initializer("low_res_shape", int64Tensor([4], [1, 3, 256, 256]))], {}, "low_res_masks");
    await writeFile(path.join(dir, "sam_mask_decoder_multi.onnx"), graph.build({ opsetVersion: 17, producerName: "test" }).model);
    const result = await engine().segment({ picture: picture(40, 30, []), prompt: { points: [{ x: 5, y: 5, positive: true }] }, model: dir });
    expect(result.score).toBeCloseTo(0.9, 6);
    expect(result.mask.data.every((value) => value === 255)).toBe(true);
  });
});

describe("checks at load", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "maskflow-sam-"));
  });

  it("names the pull command when the folder is missing", async () => {
    const sam = engine({ modelsDir: root });
    await expect(sam.segment({ picture: picture(40, 40, []), prompt: { points: [{ x: 5, y: 5, positive: true }] } })).rejects.toThrow(
      /mobile-sam.*no such folder.*maskflow models pull mobile-sam/s,
    );
  });

  it("gives one message per wrong input or output of the decoder", async () => {
    const dir = path.join(root, "wrong-decoder");
    await mkdir(dir, { recursive: true });
    const { readFile } = await import("node:fs/promises");
    await writeFile(path.join(dir, TINY_SAM_FILES.acly.encoder), await readFile(path.join(folders.samAcly, TINY_SAM_FILES.acly.encoder)));
    // A decoder with point_coords of the wrong width, no orig_im_size, and an output named "mask".
    const graph = new OnnxGraphBuilder("bad_decoder");
    graph.input("image_embeddings", "float32", [1, 256, 64, 64]);
    const coords = graph.input("point_coords", "float32", [1, "n", 3]);
    graph.input("point_labels", "float32", [1, "n"]);
    graph.input("mask_input", "float32", [1, 1, 256, 256]);
    graph.input("has_mask_input", "float32", [1]);
    graph.output("mask", "float32", [1, "n", 3]);
    graph.output("iou_predictions", "float32", [1, "n", 3]);
    graph.output("low_res_masks", "float32", [1, "n", 3]);
    graph.node("Identity", [coords], {}, "mask");
    graph.node("Identity", [coords], {}, "iou_predictions");
    graph.node("Identity", [coords], {}, "low_res_masks");
    await writeFile(path.join(dir, "sam_mask_decoder_single.onnx"), graph.build({ opsetVersion: 17, producerName: "test" }).model);

    const sam = engine();
    const failure = await sam.model(dir).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ModelLayoutError);
    const details = (failure as ModelLayoutError).problems.map((problem) => `${problem.path}: ${problem.detail}`);
    expect(details).toEqual([
      'sam_mask_decoder_single.onnx: input "point_coords" has shape [1, n, 3]; expected [1, num_points, 2]',
      'sam_mask_decoder_single.onnx: input "orig_im_size" [2] is missing; the file\'s inputs are "image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input"',
      'sam_mask_decoder_single.onnx: output "masks" [1, masks, height, width] is missing; the file\'s outputs are "mask", "iou_predictions", "low_res_masks"',
      'sam_mask_decoder_single.onnx: output "iou_predictions" has shape [1, n, 3]; expected [1, masks]',
      'sam_mask_decoder_single.onnx: output "low_res_masks" has shape [1, n, 3]; expected [1, masks, 256, 256]',
    ]);
    expect((failure as Error).message).toContain("not a Segment Anything model");
  });

  it("says which file is missing when there is no decoder", async () => {
    const dir = path.join(root, "no-decoder");
    await mkdir(dir, { recursive: true });
    const { copyFile } = await import("node:fs/promises");
    await copyFile(path.join(folders.samAcly, TINY_SAM_FILES.acly.encoder), path.join(dir, TINY_SAM_FILES.acly.encoder));
    await expect(engine().model(dir)).rejects.toThrow(/no prompt decoder: expected a \*decoder\*\.onnx file/);
  });
});

describe("the SegmentAnything node", () => {
  const object: Rect = { left: 20, top: 20, right: 70, bottom: 60 };

  it("turns its text inputs into a prompt and outputs the object's mask", async () => {
    const ctx = await createTestContext({ engines: { segment: engine() } });
    const out = (await SegmentAnythingNode.run({ image: [picture(100, 80, [object])], points: "45,40", negative_points: "", box: "", model: folders.samAcly }, ctx)) as { mask: Mask };
    expect(iou(out.mask, object)).toBeGreaterThan(0.8);
    expect(ctx.reported.embedding_cached).toBe(false);
  });

  it("names the input of a malformed point or box, before anything runs", () => {
    expect(SegmentAnythingNode.check?.({ points: "45;40", negative_points: "1,2,3", box: "1,2,3" }, {})).toEqual([
      { input: "points", message: 'SegmentAnything: input `points` has "45"; expected 2 numbers separated by commas, e.g. "120,80; 300,40"' },
      { input: "negative_points", message: 'SegmentAnything: input `negative_points` has "1,2,3"; expected 2 numbers separated by commas, e.g. "120,80; 300,40"' },
      { input: "box", message: 'SegmentAnything: input `box` has "1,2,3"; expected 4 numbers separated by commas, e.g. "40,30,260,220"' },
    ]);
  });

  it("refuses a point outside the picture, and no prompt at all, naming them", async () => {
    const ctx = await createTestContext({ engines: { segment: engine() } });
    await expect(SegmentAnythingNode.run({ image: [picture(100, 80, [object])], points: "100,40", negative_points: "", box: "", model: folders.samAcly }, ctx)).rejects.toThrow(
      "SegmentAnything: points[0] (100, 40) is outside the 100×80 picture",
    );
    await expect(SegmentAnythingNode.run({ image: [picture(100, 80, [object])], points: "", negative_points: "", box: "", model: folders.samAcly }, ctx)).rejects.toThrow(
      "SegmentAnything: give at least one point or a box",
    );
  });
});
