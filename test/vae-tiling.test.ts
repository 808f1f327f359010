/**
 * Tiled VAE encode and decode (server/engines/onnx/vae-tiling.ts): the tiling and diffusers' blend on stand-in
 * VAEs whose outputs are known, then the pipeline on the tiny model, whose VAE is local (the encoder one 8×8
 * stride-8 convolution, the decoder a 1×1 convolution and DepthToSpace), so tiling changes nothing there but
 * float32 rounding in the blends: the bound is 2 float32 ulp per value, at most 1 grey level per pixel.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Mask, RgbImage } from "../nodes/socket-types.ts";
import { checkInpaintRequest, type InpaintRequest } from "../server/engines/onnx/inpaint-pipeline.ts";
import { OnnxEngine } from "../server/engines/onnx/onnx-engine.ts";
import { decodeLatents, encodePixels } from "../server/engines/onnx/vae-codec.ts";
import { type Planes, runTiled, usesVaeTiles } from "../server/engines/onnx/vae-tiling.ts";
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { promisify } from "node:util";
import path from "node:path";
import sharp from "sharp";
import { createBuiltinRegistry } from "../nodes/index.ts";
import { InpaintNode } from "../nodes/inpaint/inpaint-node.ts";
import { Executor } from "../server/executor/executor.ts";
import { createTestContext } from "./helpers/node-context.ts";
import { recordingEngine } from "./helpers/recording-engine.ts";
import { ensureTinyModels } from "./fixtures/make-tiny-models.ts";

const f32 = Math.fround;

function planes(channels: number, height: number, width: number, value: (c: number, y: number, x: number) => number): Planes {
  const data = new Float32Array(channels * height * width);
  for (let c = 0; c < channels; c++) for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[(c * height + y) * width + x] = value(c, y, x);
  return { data, channels, height, width };
}

/** A local stand-in encoder: each 8×8 block's mean per channel, and its double in two more channels. */
function blockMeans(tile: Planes): Float32Array {
  const h = tile.height / 8;
  const w = tile.width / 8;
  const out = new Float32Array(2 * tile.channels * h * w);
  for (let c = 0; c < tile.channels; c++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let sum = 0;
        for (let dy = 0; dy < 8; dy++) for (let dx = 0; dx < 8; dx++) sum += tile.data[(c * tile.height + y * 8 + dy) * tile.width + x * 8 + dx];
        out[(c * h + y) * w + x] = sum / 64;
        out[((tile.channels + c) * h + y) * w + x] = sum / 32;
      }
    }
  }
  return out;
}

/** The largest distance in float32 steps between a[i] and b[i] (their bit patterns, sign-folded, subtracted). */
function maxUlp(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  const aBits = new Int32Array(a.buffer, a.byteOffset, a.length);
  const bBits = new Int32Array(b.buffer, b.byteOffset, b.length);
  const ordered = (bits: number) => (bits < 0 ? -(bits & 0x7fffffff) : bits);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(ordered(aBits[i]) - ordered(bBits[i])));
  return worst;
}

describe("runTiled: diffusers' tiles and blends", () => {
  it("a local encoder gives the untiled result at sizes that leave odd tiles at the edges (2 ulp)", async () => {
    for (const [height, width] of [[1024, 1024], [520, 776], [600, 1000], [2048, 64]]) {
      const input = planes(3, height, width, (c, y, x) => Math.sin(c + y * 0.37) * Math.cos(x * 0.11) + 0.25);
      const whole = blockMeans(input);
      const tiles: string[] = [];
      const tiled = await runTiled(input, { inTile: 512, ratio: 1 / 8, outChannels: 6 }, async (tile) => {
        tiles.push(`${tile.width}x${tile.height}`);
        return blockMeans(tile);
      });
      expect([tiled.channels, tiled.height, tiled.width]).toEqual([6, height / 8, width / 8]);
      expect(maxUlp(tiled.data, whole), `${width}×${height}`).toBeLessThanOrEqual(2);
      // Tiles start every 384 pixels (three quarters of 512) and are cut at the picture's edge.
      const starts = (size: number) => Array.from({ length: Math.ceil(size / 384) }, (_, i) => i * 384);
      expect(tiles).toEqual(starts(height).flatMap((y) => starts(width).map((x) => `${Math.min(512, width - x)}x${Math.min(512, height - y)}`)));
    }
  });

  it("a local decoder (nearest 8× upscale) gives the untiled result", async () => {
    const latents = planes(4, 100, 70, (c, y, x) => (c + 1) * Math.sin(y * 0.3 + x * 0.05));
    const upscale = (tile: Planes) => planes(3, tile.height * 8, tile.width * 8, (c, y, x) => tile.data[(c * tile.height + (y >> 3)) * tile.width + (x >> 3)]).data;
    const tiled = await runTiled(latents, { inTile: 64, ratio: 8, outChannels: 3 }, async (tile) => upscale(tile));
    expect(maxUlp(tiled.data, upscale(latents))).toBeLessThanOrEqual(2);
  });

  it("blends a tile into its neighbours linearly over a quarter tile, each blend on the already-blended neighbour", async () => {
    // Each tile decodes to one constant, its index: 0 1 / 2 3 on a 2×2 grid (latents 96×96: tiles at 0 and 48).
    let index = 0;
    const result = await runTiled(planes(4, 96, 96, () => 0), { inTile: 64, ratio: 8, outChannels: 3 }, async (tile) => new Float32Array(3 * tile.height * 8 * tile.width * 8).fill(index++));
    const at = (y: number, x: number) => result.data[y * result.width + x];
    const blend = 128; // a quarter of a 512-pixel tile; the second tile starts at 384 and its blend ends at 512
    expect(at(0, 383)).toBe(0);
    // Across the first vertical seam, in the top row: tile 0's columns 384..511 fade into tile 1's first 128.
    for (const x of [0, 1, 64, 127]) expect(at(10, 384 + x)).toBe(f32(0 * f32(1 - x / blend)) + f32(1 * f32(x / blend)));
    expect(at(10, 384 + 128)).toBe(1);
    // Tile 2 (below tile 0) fades in from tile 0's bottom rows; tile 3 first from tile 1 (already blended with
    // tile 0) above, then from tile 2 on its left.
    for (const y of [0, 50, 127]) expect(at(384 + y, 10)).toBe(f32(0 * f32(1 - y / blend)) + f32(2 * f32(y / blend)));
    const y = 40;
    const x = 90;
    const tile1Above = f32(0 * f32(1 - x / blend)) + f32(1 * f32(x / blend)); // tile 1's bottom rows, after its own blend with tile 0
    const tile3 = f32(f32(tile1Above * f32(1 - y / blend)) + f32(3 * f32(y / blend)));
    const tile2 = f32(0 * f32(1 - y / blend)) + f32(2 * f32(y / blend));
    expect(at(384 + y, 384 + x)).toBe(f32(tile2 * f32(1 - x / blend)) + f32(tile3 * f32(x / blend)));
  });

  it("auto tiles from twice the native size, on from one tile, off never", () => {
    expect(usesVaeTiles("auto", 768, 768, 512, 512)).toBe(false);
    expect(usesVaeTiles("auto", 1024, 512, 512, 512)).toBe(true);
    expect(usesVaeTiles("auto", 512, 2048, 512, 512)).toBe(true);
    expect(usesVaeTiles("on", 520, 512, 512, 512)).toBe(true);
    expect(usesVaeTiles("on", 512, 512, 512, 512)).toBe(false);
    expect(usesVaeTiles("off", 2048, 2048, 512, 512)).toBe(false);
    // diffusers' tiny test model: 64-pixel tiles and a native 64 px, so its 96-pixel parity cases stay untiled.
    expect(usesVaeTiles("auto", 96, 64, 64, 64)).toBe(false);
  });

  it("refuses tiles that cannot overlap by a quarter on whole latents", async () => {
    await expect(runTiled(planes(3, 64, 64, () => 0), { inTile: 36, ratio: 1 / 8, outChannels: 4 }, async () => new Float32Array(0))).rejects.toThrow(/cannot overlap by a quarter/);
  });
});

describe("tiled VAE in the pipeline on the tiny model", () => {
  let models: Awaited<ReturnType<typeof ensureTinyModels>>;
  const engine = new OnnxEngine({ threads: 1 });
  beforeAll(async () => {
    models = await ensureTinyModels();
  });
  afterAll(async () => {
    await engine.release();
  });

  function picture(size: number): RgbImage {
    const data = new Uint8Array(size * size * 3);
    for (let i = 0; i < size * size; i++) {
      data[i * 3] = (i * 7) % 256;
      data[i * 3 + 1] = ((i / size) * 3) % 256;
      data[i * 3 + 2] = 128;
    }
    return { width: size, height: size, data };
  }
  function centreMask(size: number): Mask {
    const data = new Uint8Array(size * size);
    for (let y = size / 4; y < (3 * size) / 4; y++) data.fill(255, y * size + size / 4, y * size + (3 * size) / 4);
    return { width: size, height: size, data };
  }
  function request(size: number, overrides: Partial<InpaintRequest> = {}): InpaintRequest {
    return {
      image: picture(size), mask: centreMask(size), prompt: "a cat", negativePrompt: "", scheduler: "Euler a", steps: 2, guidance: 7.5,
      strength: 0.75, seed: 5n, samples: 1, width: size, height: size, ...overrides,
    };
  }

  it("the encoder's and decoder's outputs tiled equal them untiled within 2 ulp (1024²)", async () => {
    const model = await engine.model(models.fp32);
    const size = 1024;
    const pixels = Float32Array.from({ length: 3 * size * size }, (_, i) => Math.sin(i * 0.001));
    expect(maxUlp(await encodePixels(model, pixels, size, size, true), await encodePixels(model, pixels, size, size, false))).toBeLessThanOrEqual(2);
    const latents = Float32Array.from({ length: 4 * 128 * 128 }, (_, i) => Math.cos(i * 0.01));
    expect(maxUlp(await decodeLatents(model, latents, 128, 128, true), await decodeLatents(model, latents, 128, 128, false))).toBeLessThanOrEqual(2);
  });

  it("auto tiles a 1024² inpaint; its pixels are the untiled run's within 1 grey level", async () => {
    const tiled = await engine.inpaint(request(1024), { modelDir: models.fp32 });
    const untiled = await engine.inpaint(request(1024, { vaeTiling: "off" }), { modelDir: models.fp32 });
    expect([tiled.vaeTiled, untiled.vaeTiled]).toEqual([true, false]);
    let worst = 0;
    let differing = 0;
    for (let i = 0; i < tiled.images[0].data.length; i++) {
      const d = Math.abs(tiled.images[0].data[i] - untiled.images[0].data[i]);
      worst = Math.max(worst, d);
      if (d) differing++;
    }
    expect(worst).toBeLessThanOrEqual(1);
    expect(differing / tiled.images[0].data.length).toBeLessThan(0.001);
  });

  it("a 2048² picture runs through, tiled; 768² stays untiled unless asked", async () => {
    const big = await engine.inpaint(request(2048, { steps: 1, strength: 1 }), { modelDir: models.fp32 });
    expect(big.vaeTiled).toBe(true);
    expect(big.images[0]).toMatchObject({ width: 2048, height: 2048 });
    expect(big.unetSampleDims.slice(2)).toEqual([256, 256]);
    const mid = await engine.inpaint(request(768, { steps: 1, strength: 1 }), { modelDir: models.fp32 });
    expect(mid.vaeTiled).toBe(false);
    const asked = await engine.inpaint(request(768, { steps: 1, strength: 1, vaeTiling: "on" }), { modelDir: models.fp32 });
    expect(asked.vaeTiled).toBe(true);
  });

  it("a bad vaeTiling is refused naming the field and the choices", () => {
    expect(() => checkInpaintRequest(request(512, { vaeTiling: "always" as InpaintRequest["vaeTiling"] }))).toThrow('vae_tiling: must be one of auto, on, off, got "always"');
  });

  it("the Inpaint node's vae_tiling: auto by default, and refused by name on backend segmind unless auto", () => {
    expect(InpaintNode.inputs.vae_tiling).toMatchObject({ default: "auto", options: ["auto", "on", "off"] });
    expect(InpaintNode.check!({ backend: "segmind", vae_tiling: "on", width: 512, height: 512 }, {})).toEqual([
      { input: "vae_tiling", message: expect.stringMatching(/^is set, but backend "segmind" runs its VAE on its own servers/) },
    ]);
    expect(InpaintNode.check!({ backend: "segmind", vae_tiling: "auto", width: 512, height: 512 }, {})).toEqual([]);
    expect(InpaintNode.check!({ backend: "local", vae_tiling: "off", width: 512, height: 512 }, {})).toEqual([]);
  });

  it("a workflow's vae_tiling reaches the engine", async () => {
    const ctx = await createTestContext();
    const size = 256;
    await sharp(Buffer.from(picture(size).data), { raw: { width: size, height: size, channels: 3 } }).png().toFile(path.join(ctx.folders.input, "p.png"));
    await writeFile(path.join(ctx.folders.input, "m.png"), await sharp(Buffer.from(centreMask(size).data), { raw: { width: size, height: size, channels: 1 } }).png().toBuffer());
    // The tiny model's parent is the models folder, so a Load Checkpoint can name it.
    const local = new OnnxEngine({ threads: 1, modelsDir: path.dirname(models.fp32) });
    const { engine: recorded, calls } = recordingEngine(local);
    const executor = new Executor({ registry: createBuiltinRegistry(), storage: ctx.folders, engines: { local: recorded } });
    const inpaint = { image: ["1", "image"], mask: ["2", "mask"], prompt: ["3", "prompt"], scheduler: ["4", "scheduler"], model: ["7", "model"], width: size, height: size };
    const nodes = (vae_tiling?: string) => [
      { id: "1", type: "LoadImage", inputs: { image: "p.png" } },
      { id: "2", type: "LoadMask", inputs: { image: "m.png" } },
      { id: "3", type: "Prompt", inputs: { positive: "a cat" } },
      { id: "4", type: "Scheduler", inputs: { steps: 1 } },
      { id: "5", type: "Inpaint", inputs: vae_tiling ? { ...inpaint, vae_tiling } : inpaint },
      { id: "6", type: "SaveImage", inputs: { images: ["5", "images"] } },
      { id: "7", type: "CheckpointLoader", inputs: { checkpoint: path.basename(models.fp32) } },
    ];
    try {
      for (const [jobId, mode] of [["default", undefined], ["on", "on"]] as const) {
        const result = await executor.run({ format: "maskflow-workflow", version: 1, nodes: nodes(mode) }, { jobId });
        expect(result.error).toBeUndefined();
      }
    } finally {
      await local.release();
    }
    expect(calls.map((c) => c.request.vaeTiling)).toEqual(["auto", "on"]);
    expect(calls.map((c) => c.modelDir)).toEqual([models.fp32, models.fp32]);
  });

  it("bench vae-tiling: one encode or decode, whole or in tiles, with its peak RSS", async () => {
    const bench = (args: string[]) =>
      promisify(execFile)(process.execPath, ["bin/run-ts.js", "bench/index.ts", "vae-tiling", "--model", models.fp32, "--json", ...args], { cwd: path.resolve(import.meta.dirname, ".."), timeout: 120_000 });
    const tiled = JSON.parse((await bench(["--size", "1024", "--part", "decode", "--tiling", "on"])).stdout) as Record<string, unknown>;
    expect(tiled).toMatchObject({ "vae-tiling": expect.stringMatching(/^decode 1024x1024, tiles of 512 px/), sessionRuns: 9 });
    expect(tiled.peakRssBytes as number).toBeGreaterThanOrEqual(tiled.loadedRssBytes as number);
    const whole = JSON.parse((await bench(["--size", "1024", "--part", "encode", "--tiling", "off"])).stdout) as Record<string, unknown>;
    expect(whole).toMatchObject({ "vae-tiling": expect.stringMatching(/^encode 1024x1024, whole/), sessionRuns: 1 });
    await expect(bench(["--part", "both"])).rejects.toMatchObject({ stderr: expect.stringContaining('vae-tiling: --part must be encode or decode; got "both"') });
  });
});
