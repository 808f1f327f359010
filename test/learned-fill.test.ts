import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LearnedFillNode } from "../nodes/fill/learned-fill.ts";
import type { Mask, RgbImage } from "../nodes/socket-types.ts";
import { cropAroundMask } from "../server/engines/fill/fill-crop.ts";
import { MAX_REGIONS, maskRegions } from "../server/engines/fill/mask-regions.ts";
import { LearnedFillEngine } from "../server/engines/fill/learned-fill-engine.ts";
import { ModelLayoutError } from "../server/engines/onnx/value-layout.ts";
import { ensureTinyHelperModels, type TinyHelperModelFolders } from "./fixtures/make-tiny-helper-models.ts";
import { OnnxGraphBuilder } from "../server/engines/onnx/graph/onnx-graph-builder.ts";
import { createTestContext } from "./helpers/node-context.ts";

/** Left half red, right half blue, with a green object at `object` (the thing to remove). */
function scene(width: number, height: number, object: { left: number; top: number; right: number; bottom: number }): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inObject = x >= object.left && x < object.right && y >= object.top && y < object.bottom;
      data.set(inObject ? [40, 200, 60] : x < width / 2 ? [210, 50, 40] : [40, 60, 200], (y * width + x) * 3);
    }
  }
  return { width, height, data };
}

function rectMask(width: number, height: number, rect: { left: number; top: number; right: number; bottom: number }, value = 255): Mask {
  const data = new Uint8Array(width * height);
  for (let y = rect.top; y < rect.bottom; y++) data.fill(value, y * width + rect.left, y * width + rect.right);
  return { width, height, data };
}

let folders: TinyHelperModelFolders;
const engines: LearnedFillEngine[] = [];
function engine(options: ConstructorParameters<typeof LearnedFillEngine>[0] = {}): LearnedFillEngine {
  const created = new LearnedFillEngine({ threads: 1, ...options });
  engines.push(created);
  return created;
}

beforeAll(async () => {
  folders = await ensureTinyHelperModels();
});
afterAll(async () => {
  await Promise.all(engines.map((e) => e.release()));
});

describe("the crop around the mask", () => {
  it("is a square of the mask's box plus the margin, at least the model's side, inside the picture", () => {
    expect(cropAroundMask({ left: 1000, top: 700, right: 1100, bottom: 760 }, 128, 3000, 2000, 512)).toEqual({ left: 794, top: 474, width: 512, height: 512 });
    expect(cropAroundMask({ left: 100, top: 100, right: 900, bottom: 300 }, 128, 3000, 2000, 512)).toEqual({ left: 0, top: 0, width: 1056, height: 1056 });
    // Near the right edge: shifted in, still covering the box.
    expect(cropAroundMask({ left: 2950, top: 10, right: 3000, bottom: 40 }, 128, 3000, 2000, 512)).toEqual({ left: 2488, top: 0, width: 512, height: 512 });
    // A picture narrower than the square: the whole height.
    expect(cropAroundMask({ left: 100, top: 20, right: 200, bottom: 60 }, 128, 1200, 300, 512)).toEqual({ left: 0, top: 0, width: 512, height: 300 });
  });
});

describe("the parts of a mask", () => {
  it("are found one box each, exactly, also through the smaller copy a large mask is labelled on", async () => {
    const mask = rectMask(3000, 2000, { left: 100, top: 120, right: 180, bottom: 200 });
    for (let y = 1500; y < 1510; y++) mask.data.fill(255, y * 3000 + 2500, y * 3000 + 2533);
    // Touching diagonally: one part, as a contour would have it.
    mask.data[1510 * 3000 + 2533] = 255;
    expect(await maskRegions(mask)).toEqual([
      { left: 100, top: 120, right: 180, bottom: 200 },
      { left: 2500, top: 1500, right: 2534, bottom: 1511 },
    ]);
  });

  it("past MAX_REGIONS parts, are one box around them all", async () => {
    const mask = rectMask(200, 100, { left: 0, top: 0, right: 0, bottom: 0 });
    for (let i = 0; i <= MAX_REGIONS; i++) mask.data[50 * 200 + 10 + i * 15] = 255;
    expect(await maskRegions(mask)).toEqual([{ left: 10, top: 50, right: 10 + MAX_REGIONS * 15 + 1, bottom: 51 }]);
  });
});

describe("LearnedFill on the LaMa miniature", () => {
  const object = { left: 100, top: 250, right: 160, bottom: 310 };

  it("fills the hole from its surroundings and keeps every other pixel byte for byte", async () => {
    const picture = scene(800, 600, object);
    const mask = rectMask(800, 600, { left: 95, top: 245, right: 165, bottom: 315 });
    const result = await engine().fill({ picture, mask, model: folders.lama });
    expect(result.crops).toEqual([{ left: 0, top: 24, width: 512, height: 512 }]);
    let changedOutside = 0;
    let sum = [0, 0, 0];
    let inside = 0;
    for (let i = 0; i < 800 * 600; i++) {
      const same = [0, 1, 2].every((c) => result.image.data[i * 3 + c] === picture.data[i * 3 + c]);
      if (mask.data[i] === 0) {
        if (!same) changedOutside++;
        continue;
      }
      inside++;
      sum = sum.map((s, c) => s + result.image.data[i * 3 + c]);
    }
    expect(changedOutside).toBe(0);
    const [r, g, b] = sum.map((s) => s / inside);
    // The green object is gone: the hole is the red around it (the miniature averages the known pixels nearby).
    expect(r).toBeGreaterThan(170);
    expect(g).toBeLessThan(90);
    expect(b).toBeLessThan(90);
  });

  it("fills two holes far apart each in its own square, as IOPaint crops each part of the mask", async () => {
    const picture = scene(2400, 1000, { left: 150, top: 400, right: 200, bottom: 450 });
    // A second object on the blue side.
    for (let y = 600; y < 640; y++) for (let x = 2100; x < 2150; x++) picture.data.set([40, 200, 60], (y * 2400 + x) * 3);
    const mask = rectMask(2400, 1000, { left: 145, top: 395, right: 205, bottom: 455 });
    for (let y = 595; y < 645; y++) mask.data.fill(255, y * 2400 + 2095, y * 2400 + 2155);
    const result = await engine().fill({ picture, mask, model: folders.lama });
    expect(result.crops).toEqual([
      { left: 0, top: 169, width: 512, height: 512 },
      { left: 1869, top: 364, width: 512, height: 512 },
    ]);
    const at = (x: number, y: number) => [...result.image.data.subarray((y * 2400 + x) * 3, (y * 2400 + x) * 3 + 3)];
    const [r1, g1] = at(175, 425);
    expect(r1).toBeGreaterThan(170);
    expect(g1).toBeLessThan(90);
    const [, g2, b2] = at(2125, 620);
    expect(b2).toBeGreaterThan(170);
    expect(g2).toBeLessThan(90);
  });

  it("blends a grey mask value: 50 % mask, about half the fill", async () => {
    const region = { left: 110, top: 60, right: 130, bottom: 80 };
    const picture = scene(300, 200, region);
    const full = await engine().fill({ picture, mask: rectMask(300, 200, region), model: folders.lama });
    const half = await engine().fill({ picture, mask: rectMask(300, 200, region, 128), model: folders.lama });
    const at = (image: RgbImage) => image.data[(70 * 300 + 120) * 3 + 1];
    const original = 200; // the green channel of the object
    expect(at(full.image)).toBeLessThan(120);
    expect(Math.abs(at(half.image) - (original + (at(full.image) - original) * (128 / 255)))).toBeLessThan(3);
  });

  it("returns the picture untouched, without loading a model, when the mask is empty", async () => {
    const picture = scene(64, 48, object);
    const result = await engine({ modelsDir: "/nonexistent" }).fill({ picture, mask: rectMask(64, 48, { left: 0, top: 0, right: 0, bottom: 0 }) });
    expect(result.image).toBe(picture);
    expect(result.crops).toEqual([]);
  });

  it("the node fills each picture of a batch and refuses a mask of another size", async () => {
    const ctx = await createTestContext({ engines: { learnedFill: engine() } });
    const picture = scene(200, 120, { left: 30, top: 30, right: 60, bottom: 60 });
    const out = (await LearnedFillNode.run({ image: [picture, picture], mask: rectMask(200, 120, { left: 25, top: 25, right: 65, bottom: 65 }), margin: 64, model: folders.lama }, ctx)) as { image: RgbImage[] };
    expect(out.image).toHaveLength(2);
    expect(out.image[0].data[(45 * 200 + 45) * 3 + 1]).toBeLessThan(100);
    await expect(LearnedFillNode.run({ image: [picture], mask: rectMask(100, 120, { left: 0, top: 0, right: 10, bottom: 10 }), margin: 64, model: folders.lama }, ctx)).rejects.toThrow(
      "LearnedFill: input `mask` is 100×120 but input `image` is 200×120; they must match",
    );
  });
});

describe("LaMa checks at load", () => {
  it("names every input and output that is not Carve/LaMa-ONNX's", async () => {
    const dir = path.join(await mkdtemp(path.join(os.tmpdir(), "maskflow-lama-")), "lama");
    await mkdir(dir);
    // g-ronimo/lama's layout: one 4-channel input, which Maskflow does not take.
    const graph = new OnnxGraphBuilder("other_lama");
    const input = graph.input("input", "float32", [1, 4, 512, 512]);
    graph.output("output", "float32", [1, 4, 512, 512]);
    graph.node("Identity", [input], {}, "output");
    await writeFile(path.join(dir, "lama.onnx"), graph.build({ opsetVersion: 17, producerName: "test" }).model);
    const failure = await engine().model(dir).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ModelLayoutError);
    expect((failure as ModelLayoutError).problems.map((p) => p.detail)).toEqual([
      'input "image" [batch, 3, 512, 512] is missing; the file\'s inputs are "input"',
      'input "mask" [batch, 1, 512, 512] is missing; the file\'s inputs are "input"',
      'output "output" has shape [1, 4, 512, 512]; expected [batch, 3, 512, 512]',
    ]);
  });

  it("names the pull command when there is no model", async () => {
    await expect(engine({ modelsDir: path.join(os.tmpdir(), "maskflow-no-models") }).model()).rejects.toThrow(/maskflow models pull lama/);
  });
});
