/**
 * Soft inpainting (differential diffusion) on the tiny models, 9-channel and 4-channel: a 0 mask keeps the original
 * latents (the picture is the VAE's own round trip, and paste-back gives the original byte for byte), an all-1 mask
 * gives the pixels of a run without soft_mask, and a ramp changes the picture more where the mask is higher.
 */
import { plainRecipe } from "../server/models/checkpoint/model-recipe.ts";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InpaintNode } from "../nodes/inpaint/inpaint-node.ts";
import { FeatherMaskNode } from "../nodes/mask/feather-mask.ts";
import type { Mask, RgbImage } from "../nodes/socket-types.ts";
import { heldBeforeStep, latentChangeMask } from "../server/engines/onnx/differential-diffusion.ts";
import { tensorToImage, imageToTensor } from "../server/engines/onnx/image-tensors.ts";
import type { InpaintRequest } from "../server/engines/onnx/inpaint-pipeline.ts";
import { OnnxEngine } from "../server/engines/onnx/onnx-engine.ts";
import { ensureTinyModels } from "./fixtures/make-tiny-models.ts";
import { createTestContext } from "./helpers/node-context.ts";

let models: Awaited<ReturnType<typeof ensureTinyModels>>;
const engine = new OnnxEngine({ threads: 1 });

beforeAll(async () => {
  models = await ensureTinyModels();
});
afterAll(async () => {
  await engine.release();
});

const SIZE = 64;

function picture(): RgbImage {
  const data = new Uint8Array(SIZE * SIZE * 3);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const i = (y * SIZE + x) * 3;
      data[i] = (x * 4 + y) % 256;
      data[i + 1] = (y * 4) % 256;
      data[i + 2] = 128 + Math.round(60 * Math.sin(x / 5));
    }
  }
  return { width: SIZE, height: SIZE, data };
}

function maskOf(value: (x: number, y: number) => number): Mask {
  const data = new Uint8Array(SIZE * SIZE);
  for (let y = 0; y < SIZE; y++) for (let x = 0; x < SIZE; x++) data[y * SIZE + x] = value(x, y);
  return { width: SIZE, height: SIZE, data };
}

function request(overrides: Partial<InpaintRequest> = {}): InpaintRequest {
  return {
    image: picture(),
    mask: maskOf(() => 255),
    prompt: "a photo of a cat",
    negativePrompt: "",
    scheduler: "DDIM",
    steps: 8,
    guidance: 7.5,
    strength: 1,
    seed: 42n,
    samples: 1,
    width: SIZE,
    height: SIZE,
    ...overrides,
  };
}

const bytes = (image: RgbImage) => Buffer.from(image.data).toString("base64");

/** decode(encode(picture)) with onnxruntime itself: what a latent left wholly alone must decode to. */
async function vaeRoundTrip(modelDir: string, image: RgbImage): Promise<RgbImage> {
  const encoder = await ort.InferenceSession.create(path.join(modelDir, "vae_encoder", "model.onnx"));
  const decoder = await ort.InferenceSession.create(path.join(modelDir, "vae_decoder", "model.onnx"));
  try {
    const encoded = await encoder.run({ sample: new ort.Tensor("float32", imageToTensor(image), [1, 3, image.height, image.width]) });
    const latent = encoded[encoder.outputNames[0]];
    // The tiny exports output latent_sample (4 channels): the pipeline scales by 0.18215 and back, in float32.
    const values = latent.data as Float32Array;
    const scaled = values.map((v) => Math.fround(Math.fround(0.18215 * v) / 0.18215));
    const decoded = await decoder.run({ latent_sample: new ort.Tensor("float32", scaled, latent.dims) });
    return tensorToImage(decoded.sample.data as Float32Array, image.width, image.height);
  } finally {
    await encoder.release();
    await decoder.release();
  }
}

describe("differential diffusion's hold rule", () => {
  it("holds a place before step i of n while 1 − mask > i / n, and after the last step only the places at 0", () => {
    const mask = Float32Array.of(0, 0.25, 0.5, 0.75, 1);
    expect([...heldBeforeStep(mask, 0, 4)]).toEqual([1, 1, 1, 1, 0]);
    expect([...heldBeforeStep(mask, 1, 4)]).toEqual([1, 1, 1, 0, 0]);
    expect([...heldBeforeStep(mask, 2, 4)]).toEqual([1, 1, 0, 0, 0]);
    expect([...heldBeforeStep(mask, 3, 4)]).toEqual([1, 0, 0, 0, 0]);
    expect([...heldBeforeStep(mask, 4, 4)]).toEqual([1, 0, 0, 0, 0]);
  });

  it("takes the mask to latents as the mean of each latent's pixels", () => {
    const mask = maskOf((x) => (x < 4 ? 255 : 0));
    const latent = latentChangeMask(mask, 8);
    expect(latent).toHaveLength(64);
    expect(latent[0]).toBeCloseTo(0.5, 6);
    expect(latent[1]).toBe(0);
    expect(() => latentChangeMask({ width: 60, height: 64, data: new Uint8Array(60 * 64) }, 8)).toThrow(/soft_mask.*60×64.*8×8/);
  });
});

describe("soft inpainting on the tiny models", () => {
  for (const variant of ["fp32", "legacy"] as const) {
    const channels = variant === "fp32" ? 9 : 4;

    it(`${channels}-channel: a mask of all 1 gives the same pixels as without soft_mask (DDIM and Euler a, strength 1 and 0.6)`, async () => {
      const modelDir = models[variant];
      for (const overrides of [{}, { scheduler: "Euler a", strength: 0.6 }, { strength: 0.6, samples: 2 }] as const) {
        const plain = await engine.inpaint(request(overrides), { modelDir });
        const soft = await engine.inpaint(request({ ...overrides, softMask: true }), { modelDir });
        expect(soft.images.map(bytes)).toEqual(plain.images.map(bytes));
      }
    });

    it(`${channels}-channel: a mask of all 0 leaves the latents the original's — the picture is the VAE's round trip byte for byte`, async () => {
      const modelDir = models[variant];
      const roundTrip = await vaeRoundTrip(modelDir, picture());
      for (const overrides of [{}, { scheduler: "Euler a", strength: 0.6 }] as const) {
        const soft = await engine.inpaint(request({ ...overrides, mask: maskOf(() => 0), softMask: true }), { modelDir });
        expect(bytes(soft.images[0])).toBe(bytes(roundTrip));
        // Without soft_mask the same black mask still lets the 9-channel model repaint its own latents.
        if (channels === 9) {
          const plain = await engine.inpaint(request({ ...overrides, mask: maskOf(() => 0) }), { modelDir });
          expect(bytes(plain.images[0])).not.toBe(bytes(roundTrip));
        }
      }
    });

    it(`${channels}-channel: a left-to-right ramp changes the picture more where the mask is higher (monotone over its four quarters)`, async () => {
      const modelDir = models[variant];
      const roundTrip = await vaeRoundTrip(modelDir, picture());
      // One value per latent column (8 px): 0, 1/7, … 1. Beyond about 0.6 this random-weight model's change saturates,
      // so neighbouring columns there differ by less than one seed's noise: quarters (two columns each) are compared.
      const ramp = maskOf((x) => Math.round((Math.floor(x / 8) * 255) / 7));
      const change = new Array<number>(4).fill(0);
      let changedWhereZero = 0;
      const seeds = [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n];
      for (const seed of seeds) {
        const soft = await engine.inpaint(request({ mask: ramp, softMask: true, seed, steps: 28 }), { modelDir });
        const out = soft.images[0].data;
        for (let y = 0; y < SIZE; y++) {
          for (let x = 0; x < SIZE; x++) {
            const i = (y * SIZE + x) * 3;
            const difference = Math.abs(out[i] - roundTrip.data[i]) + Math.abs(out[i + 1] - roundTrip.data[i + 1]) + Math.abs(out[i + 2] - roundTrip.data[i + 2]);
            change[Math.floor(x / 16)] += difference;
            if (x < 8) changedWhereZero += difference;
          }
        }
      }
      const perValue = change.map((sum) => sum / (seeds.length * 16 * SIZE * 3));
      const shown = perValue.map((v) => v.toFixed(1)).join(" < ");
      for (let quarter = 1; quarter < 4; quarter++) expect(perValue[quarter], shown).toBeGreaterThan(perValue[quarter - 1] + 2);
      // The first latent column's mask is 0: the VAE's round trip there, to the grey level.
      expect(changedWhereZero).toBe(0);
    });
  }

  it("4-channel: a black-and-white mask on the latent grid gives the pixels of the usual blend-back (strength < 1)", async () => {
    const modelDir = models.legacy;
    const block = maskOf((x, y) => (x >= 16 && x < 48 && y >= 8 && y < 40 ? 255 : 0));
    for (const scheduler of ["DDIM", "Euler a", "DPM Multi"]) {
      const overrides = { mask: block, scheduler, strength: 0.75 };
      const plain = await engine.inpaint(request(overrides), { modelDir });
      const soft = await engine.inpaint(request({ ...overrides, softMask: true }), { modelDir });
      expect(bytes(soft.images[0]), scheduler).toBe(bytes(plain.images[0]));
    }
  });
});

describe("FeatherMask as the source of a soft mask", () => {
  it("turns a hard edge into a grey ramp of every level, wider with the radius", async () => {
    const hard = maskOf((x) => (x >= 32 ? 255 : 0));
    const ctx = await createTestContext();
    const widths = [];
    for (const radius of [4, 12]) {
      const { mask } = await FeatherMaskNode.run({ mask: hard, radius }, ctx);
      const row = Array.from((mask as Mask).data.subarray(32 * SIZE, 33 * SIZE));
      const grey = row.filter((v) => v > 0 && v < 255);
      expect(row.every((v, x) => x === 0 || v >= row[x - 1])).toBe(true);
      expect(Math.min(...grey)).toBeLessThan(40);
      expect(Math.max(...grey)).toBeGreaterThan(215);
      widths.push(grey.length);
    }
    expect(widths[1]).toBeGreaterThan(2 * widths[0]);
  });
});

describe("Inpaint node's soft_mask", () => {
  it("with paste-back keeps every pixel whose mask is 0 byte for byte, and changes the grey ones", async () => {
    const ctx = await createTestContext({ engines: { local: engine } });
    const image = picture();
    const ramp = maskOf((x) => (x < 16 ? 0 : Math.min(255, (x - 16) * 6)));
    const { images } = await InpaintNode.run(
      {
        image: [image], mask: ramp, prompt: { positive: "a cat", negative: "" },
        scheduler: { name: "DDIM", steps: 6, guidance: 7.5, strength: 1, seed: 5n },
        // What a linked Load Checkpoint hands on: the model folder.
        backend: "local", model: plainRecipe(models.fp32), samples: 1, width: SIZE, height: SIZE,
        paste_back: true, mask_blur: 0, masked_content: "original", soft_mask: true,
      },
      ctx,
    );
    const out = (images as RgbImage[])[0].data;
    let changedGrey = 0;
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const i = (y * SIZE + x) * 3;
        const same = out[i] === image.data[i] && out[i + 1] === image.data[i + 1] && out[i + 2] === image.data[i + 2];
        if (x < 16) expect(same, `(${x}, ${y})`).toBe(true);
        else if (x < 58 && !same) changedGrey++;
      }
    }
    expect(changedGrey).toBeGreaterThan(0.9 * 42 * SIZE);
  });

  it("refuses backend segmind, naming the option, in the check and in run", async () => {
    const problems = InpaintNode.check!({ backend: "segmind", soft_mask: true, width: 512, height: 512 }, {});
    expect(problems).toEqual([{ input: "soft_mask", message: expect.stringMatching(/backend "segmind" has no soft inpainting.*backend "local".*soft_mask to false/) }]);
    expect(InpaintNode.check!({ backend: "segmind", soft_mask: false, width: 512, height: 512 }, {})).toEqual([]);
    const ctx = await createTestContext();
    await expect(
      InpaintNode.run(
        {
          image: [picture()], mask: maskOf(() => 255), prompt: { positive: "a cat", negative: "" },
          scheduler: { name: "DDIM", steps: 6, guidance: 7.5, strength: 1, seed: 5n },
          backend: "segmind", model: "", samples: 1, width: 512, height: 512,
          paste_back: true, mask_blur: 4, masked_content: "original", soft_mask: true,
        },
        ctx,
      ),
    ).rejects.toThrow(/Inpaint: input `soft_mask` is true, but backend "segmind"/);
  });
});
