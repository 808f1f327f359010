import { copyFile, cp, mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Mask, RgbImage } from "../nodes/socket-types.ts";
import type { InpaintRequest } from "../server/engines/onnx/inpaint-pipeline.ts";
import { OnnxEngine } from "../server/engines/onnx/onnx-engine.ts";
import { SCHEDULER_NAMES } from "../server/engines/onnx/schedulers/index.ts";
import { ensureTinyModels, writeTinyModel } from "./fixtures/make-tiny-models.ts";

let models: Awaited<ReturnType<typeof ensureTinyModels>>;
// Batched guidance (the GPU default) is what most of these tests look at; the CPU default is checked below.
const engine = new OnnxEngine({ threads: 1, guidanceCalls: "batched" });

beforeAll(async () => {
  models = await ensureTinyModels();
});
afterAll(async () => {
  await engine.release();
});

function picture(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    data[i * 3] = (i * 7) % 256;
    data[i * 3 + 1] = (i >> 3) % 256;
    data[i * 3 + 2] = 128;
  }
  return { width, height, data };
}

function squareMask(width: number, height: number, x0: number, y0: number, size: number): Mask {
  const data = new Uint8Array(width * height);
  for (let y = y0; y < y0 + size; y++) for (let x = x0; x < x0 + size; x++) data[y * width + x] = 255;
  return { width, height, data };
}

function request(overrides: Partial<InpaintRequest> = {}): InpaintRequest {
  return {
    image: picture(64, 64),
    mask: squareMask(64, 64, 16, 16, 24),
    prompt: "a photo of a cat",
    negativePrompt: "",
    scheduler: "DDIM",
    steps: 4,
    guidance: 7.5,
    strength: 1,
    seed: 42n,
    samples: 1,
    width: 64,
    height: 64,
    ...overrides,
  };
}

describe("local ONNX engine on the tiny models", () => {
  it("reads what each export declares: channels, dtypes, timestep type, encoder output", async () => {
    const fp32 = await engine.model(models.fp32);
    expect(fp32.info).toMatchObject({ unetInChannels: 9, floatType: "float32", timestepType: "int64", hiddenSize: 32, unetBatchable: true });
    const fp16 = await engine.model(models.fp16);
    // On CPU an fp16 export is opened as its fp32 copy (fp32-cache.ts): the UNet then takes a float32 timestep.
    expect(fp16.info).toMatchObject({ unetInChannels: 9, floatType: "float16", timestepType: "float32" });
    const legacy = await engine.model(models.legacy);
    expect(legacy.info).toMatchObject({ unetInChannels: 4, floatType: "float32", timestepType: "float32" });
  });

  it("gives the same pixels with the CPU defaults for real-size memory (guidance in two calls, text encoder and VAE reopened per run) as batched and resident", async () => {
    const lean = new OnnxEngine({ threads: 1 });
    expect([lean.device, lean.guidanceCalls, lean.residentSessions]).toEqual(["cpu", "sequential", "unet"]);
    try {
      for (const modelDir of [models.fp32, models.fp16, models.legacy]) {
        const job = request({ strength: 0.7, samples: 2 });
        const [usual, leaner] = [await engine.inpaint(job, { modelDir }), await lean.inpaint(job, { modelDir })];
        expect(leaner.unetSampleDims[0]).toBe(2);
        expect(leaner.images.map((image) => Buffer.from(image.data).toString("base64"))).toEqual(
          usual.images.map((image) => Buffer.from(image.data).toString("base64")),
        );
      }
    } finally {
      await lean.release();
    }
  });

  it("warms the UNet up while loading: the model is ready with one UNet call made, before any job", async () => {
    const local = new OnnxEngine({ threads: 1 });
    try {
      const model = await local.model(models.fp32);
      expect(model.unet.runMs).toBeGreaterThan(0);
      expect(model.vaeDecoder.runMs).toBe(0);
    } finally {
      await local.release();
    }
  });

  it("reports the load of a model's four sessions and its warm-up to every job waiting for it, once", async () => {
    const local = new OnnxEngine({ threads: 1 });
    try {
      const first: string[] = [];
      const second: string[] = [];
      await Promise.all([
        local.inpaint(request({ steps: 1 }), { modelDir: models.fp32, onLoad: (n, total, part) => first.push(`${n}/${total} ${part}`) }),
        local.inpaint(request({ steps: 1 }), { modelDir: models.fp32, onLoad: (n, total, part) => second.push(`${n}/${total} ${part}`) }),
      ]);
      expect(first).toEqual(["1/4 text_encoder", "2/4 unet", "3/4 vae_encoder", "4/4 vae_decoder", "4/4 warming up"]);
      expect(second).toEqual(first);
      const later: string[] = [];
      await local.inpaint(request({ steps: 1 }), { modelDir: models.fp32, onLoad: (n) => later.push(String(n)) });
      expect(later).toEqual([]);
    } finally {
      await local.release();
    }
  });

  it("inpaints to the requested size with progress and previews, guidance batched into one UNet call", async () => {
    const steps: Array<[number, number, number]> = [];
    const result = await engine.inpaint(request({ width: 128, height: 96, image: picture(128, 96), mask: squareMask(128, 96, 8, 8, 40) }), {
      modelDir: models.fp32,
      onStep: (step, total, preview) => steps.push([step, total, preview.width]),
    });
    expect(result.images).toHaveLength(1);
    expect(result.images[0]).toMatchObject({ width: 128, height: 96 });
    expect(result.images[0].data).toHaveLength(128 * 96 * 3);
    expect(steps).toEqual([[1, 4, 16], [2, 4, 16], [3, 4, 16], [4, 4, 16]]);
    expect(result.unetSampleDims).toEqual([2, 9, 12, 16]);
    expect(result.onnxMs).toBeGreaterThan(0);
  });

  it("gives the same pixels for the same seed and different ones for another seed or scheduler", async () => {
    const a = await engine.inpaint(request(), { modelDir: models.fp32 });
    const b = await engine.inpaint(request(), { modelDir: models.fp32 });
    expect(Buffer.from(a.images[0].data).equals(Buffer.from(b.images[0].data))).toBe(true);
    const otherSeed = await engine.inpaint(request({ seed: 43n }), { modelDir: models.fp32 });
    expect(Buffer.from(a.images[0].data).equals(Buffer.from(otherSeed.images[0].data))).toBe(false);
    const euler = await engine.inpaint(request({ scheduler: "Euler" }), { modelDir: models.fp32 });
    expect(Buffer.from(a.images[0].data).equals(Buffer.from(euler.images[0].data))).toBe(false);
  });


  it("runs a model folder without tokenizer/ on the CLIP vocabulary Maskflow ships, with the same pixels", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-no-tokenizer-"));
    const local = new OnnxEngine({ threads: 1 });
    try {
      await cp(models.fp32, dir, { recursive: true });
      await rm(path.join(dir, "tokenizer"), { recursive: true });
      const own = await engine.inpaint(request(), { modelDir: models.fp32 });
      const shipped = await local.inpaint(request(), { modelDir: dir });
      expect(Buffer.from(shipped.images[0].data).equals(Buffer.from(own.images[0].data))).toBe(true);
    } finally {
      await local.release();
      await rm(dir, { recursive: true, force: true });
    }
  });
  it("runs every scheduler: the Segmind API's eleven and LCM", async () => {
    const seen = new Set<string>();
    for (const scheduler of SCHEDULER_NAMES) {
      const result = await engine.inpaint(request({ scheduler, steps: 3 }), { modelDir: models.fp32 });
      expect(result.images[0].data.every((v) => Number.isFinite(v))).toBe(true);
      seen.add(Buffer.from(result.images[0].data).toString("base64"));
    }
    expect(SCHEDULER_NAMES).toHaveLength(12);
    expect(seen.size).toBeGreaterThan(5);
  });

  it("makes 1–4 samples, each different, at 512 and 768", async () => {
    const four = await engine.inpaint(request({ samples: 4, steps: 2 }), { modelDir: models.fp32 });
    expect(four.images).toHaveLength(4);
    expect(new Set(four.images.map((i) => Buffer.from(i.data).toString("base64"))).size).toBe(4);
    expect(four.unetSampleDims[0]).toBe(8);
    for (const size of [512, 768]) {
      const big = await engine.inpaint(request({ width: size, height: size, steps: 1 }), { modelDir: models.fp32 });
      expect(big.images[0]).toMatchObject({ width: size, height: size });
    }
  });

  it("runs the fp16 export and the 4-channel legacy path", async () => {
    const fp16 = await engine.inpaint(request(), { modelDir: models.fp16 });
    expect(fp16.images[0].width).toBe(64);
    const legacy = await engine.inpaint(request(), { modelDir: models.legacy });
    expect(legacy.unetSampleDims).toEqual([2, 4, 8, 8]);
    // Strength below 1 keeps part of the picture: fewer steps run.
    const partial = await engine.inpaint(request({ strength: 0.5, steps: 10 }), { modelDir: models.fp32 });
    expect(partial.steps).toBe(5);
  });

  it("starts the masked area from the picture, noise or nothing when strength < 1 (masked content)", async () => {
    const outputs = new Set<string>();
    for (const maskedContent of ["original", "latent noise", "latent nothing"] as const) {
      const result = await engine.inpaint(request({ strength: 0.6, steps: 5, maskedContent }), { modelDir: models.fp32 });
      outputs.add(Buffer.from(result.images[0].data).toString("base64"));
    }
    expect(outputs.size).toBe(3);
    await expect(engine.inpaint(request({ maskedContent: "sideways" as never }), { modelDir: models.fp32 })).rejects.toThrow(/^masked_content: must be one of/);
  });

  it("samples latents from mean ‖ logvar with the seed when the VAE encoder exports latent_parameters", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-params-"));
    await writeTinyModel(dir, { vaeOutput: "latent_parameters" });
    const local = new OnnxEngine({ threads: 1 });
    try {
      expect((await local.model(dir)).info.vaeEncoderOutput).toBe("latent_parameters");
      const a = await local.inpaint(request(), { modelDir: dir });
      const b = await local.inpaint(request(), { modelDir: dir });
      expect(Buffer.from(a.images[0].data).equals(Buffer.from(b.images[0].data))).toBe(true);
    } finally {
      await local.release();
    }
  });

  it("stops between steps when interrupted", async () => {
    const abort = new AbortController();
    let seen = 0;
    await expect(
      engine.inpaint(request({ steps: 20 }), {
        modelDir: models.fp32,
        signal: abort.signal,
        onStep: (step) => {
          seen = step;
          if (step === 2) abort.abort(new Error("stop"));
        },
      }),
    ).rejects.toThrow("stop");
    expect(seen).toBe(2);
  });

  it("rejects bad requests with the field named, before any model loads", async () => {
    const nowhere = path.join(os.tmpdir(), "no-such-model-folder");
    const cases: Array<[Partial<InpaintRequest>, RegExp]> = [
      [{ width: 500 }, /^width: must be a multiple of 8/],
      [{ steps: 0 }, /^steps:/],
      [{ strength: 0 }, /^strength:/],
      [{ scheduler: "Fancy" }, /^scheduler: unknown scheduler "Fancy"; allowed: DDIM, /],
      [{ samples: 5 }, /^samples:/],
    ];
    for (const [overrides, message] of cases) {
      await expect(engine.inpaint(request(overrides), { modelDir: nowhere })).rejects.toThrow(message);
    }
    await expect(engine.inpaint(request(), { modelDir: nowhere })).rejects.toThrow(/no model folder here.*models pull/);
  });

  it("resizes a mask of another size than the image, with a note", async () => {
    const notes: string[] = [];
    const result = await engine.inpaint(request({ mask: squareMask(32, 32, 8, 8, 12) }), { modelDir: models.fp32, onNote: (m) => notes.push(m) });
    expect(result.images[0].width).toBe(64);
    expect(notes[0]).toMatch(/mask is 32×32 but the image is 64×64/);
  });

  it("names the file when a model file is missing or truncated", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-broken-"));
    await cp(models.fp32, dir, { recursive: true });
    const local = new OnnxEngine({ threads: 1 });
    await rm(path.join(dir, "vae_decoder/model.onnx"));
    await expect(local.model(dir)).rejects.toThrow(/vae_decoder\/model\.onnx: missing or empty/);
    await copyFile(path.join(models.fp32, "vae_decoder/model.onnx"), path.join(dir, "vae_decoder/model.onnx"));
    await truncate(path.join(dir, "unet/model.onnx_data"), 100);
    await expect(local.model(dir)).rejects.toThrow(/unet\/model\.onnx: onnxruntime could not load it/);
    await writeFile(path.join(dir, "scheduler/scheduler_config.json"), "{oops");
    await expect(local.model(dir)).rejects.toThrow(/scheduler_config\.json: not valid JSON/);
    await local.release();
  });

  it("asked for CUDA where its provider is not installed, says so in one message instead of crashing", async () => {
    const cuda = new OnnxEngine({ device: "cuda", threads: 1 });
    try {
      const outcome = await cuda.model(models.fp32).then(
        () => "loaded",
        (error: Error) => error.message,
      );
      // A machine with the CUDA provider installed loads; every other machine gets the one message.
      if (outcome !== "loaded") expect(outcome).toMatch(/CUDA execution provider is not installed.*ONNXRUNTIME_NODE_INSTALL=cuda12/);
    } finally {
      await cuda.release();
    }
  });

  it("writes a real picture: decodes as PNG", async () => {
    const result = await engine.inpaint(request(), { modelDir: models.fp32 });
    const { data } = result.images[0];
    const png = await sharp(data, { raw: { width: 64, height: 64, channels: 3 } }).png().toBuffer();
    expect((await sharp(png).metadata()).width).toBe(64);
  });
});
