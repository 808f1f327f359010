/**
 * LoRA builds as a user meets them: the recipe's parts are kept by their own keys, so a change of one strength
 * rebuilds only the part it touches; strength 0 is the model without the LoRA, to the byte; a LoRA whose keys
 * match nothing fails the build, naming them, and nothing is left behind.
 */
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runBuildJob } from "../server/models/checkpoint/build-job.ts";
import { buildCheckpoint } from "../server/models/checkpoint/built-model-cache.ts";
import type { LoraUse } from "../server/models/checkpoint/model-recipe.ts";
import { writeSafetensors } from "./fixtures/checkpoint-writers.ts";
import { ensureTinyCheckpoints, type TinyCheckpointPaths } from "./fixtures/make-tiny-checkpoint.ts";
import { ensureTinyLoras, type TinyLoraPaths } from "./fixtures/make-tiny-lora.ts";

let tiny: TinyCheckpointPaths;
let loras: TinyLoraPaths;
let cacheRoot: string;

const lora = (file: string, strengthModel: number, strengthClip: number, ignoreUnmatched = false): LoraUse => ({ file, strengthModel, strengthClip, ignoreUnmatched });
const build = (uses: LoraUse[]) => runBuildJob({ source: tiny.singleFile, cacheRoot, loras: uses });
const bytesOf = (dir: string, part: string) => readFile(path.join(dir, part, "model.onnx_data"));

beforeAll(async () => {
  tiny = await ensureTinyCheckpoints();
  loras = await ensureTinyLoras();
  cacheRoot = await mkdtemp(path.join(os.tmpdir(), "maskflow-lora-builds-"));
}, 120_000);

afterAll(async () => {
  if (cacheRoot) await rm(cacheRoot, { recursive: true, force: true });
});

describe("LoRA builds", () => {
  it("a strength change rebuilds only the part it touches; the others come from the part store", async () => {
    const plain = await build([]);
    expect(plain.summary?.rebuiltParts).toEqual(["text_encoder", "unet", "vae_encoder", "vae_decoder"]);

    const both = await build([lora(loras["kohya-ldm"], 1, 1)]);
    expect(both.summary?.rebuiltParts).toEqual(["text_encoder", "unet"]);
    expect((await bytesOf(both.dir, "unet")).equals(await bytesOf(plain.dir, "unet"))).toBe(false);
    expect((await bytesOf(both.dir, "vae_decoder")).equals(await bytesOf(plain.dir, "vae_decoder"))).toBe(true);

    const unetOnly = await build([lora(loras["kohya-ldm"], 0.5, 1)]);
    expect(unetOnly.summary?.rebuiltParts).toEqual(["unet"]);
    const clipOnly = await build([lora(loras["kohya-ldm"], 0.5, 0.25)]);
    expect(clipOnly.summary?.rebuiltParts).toEqual(["text_encoder"]);

    const again = await build([lora(loras["kohya-ldm"], 0.5, 0.25)]);
    expect(again.built).toBe(false);
    expect(again.dir).toBe(clipOnly.dir);
  });

  it("two builds of one checkpoint asked for at once with other LoRA strengths are two builds, not one shared", async () => {
    const ask = (strength: number) => buildCheckpoint({ source: tiny.singleFile, cacheRoot, loras: [lora(loras.peft, strength, strength)] });
    const [half, full] = await Promise.all([ask(0.5), ask(1)]);
    expect(half.dir).not.toBe(full.dir);
    expect((await bytesOf(half.dir, "unet")).equals(await bytesOf(full.dir, "unet"))).toBe(false);
  });

  it("strength 0 on both gives the model without the LoRA, to the byte", async () => {
    const plain = await build([]);
    const zero = await build([lora(loras.peft, 0, 0)]);
    expect(zero.dir).toBe(plain.dir);
    for (const part of ["text_encoder", "unet", "vae_encoder", "vae_decoder"]) {
      expect((await bytesOf(zero.dir, part)).equals(await bytesOf(plain.dir, part)), part).toBe(true);
    }
  });

  it("a LoRA with keys that match no module fails naming them, and builds with ignoreUnmatched", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-lora-bogus-"));
    try {
      const bogus = path.join(dir, "bogus.safetensors");
      await writeSafetensors(bogus, [
        { name: "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", dtype: "F32", shape: [2, 32, 1, 1], values: new Float32Array(64).fill(0.01) },
        { name: "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight", dtype: "F32", shape: [32, 2, 1, 1], values: new Float32Array(64).fill(0.01) },
        { name: "lora_unet_no_such_module.lora_down.weight", dtype: "F32", shape: [2, 4], values: new Float32Array(8) },
        { name: "lora_unet_no_such_module.lora_up.weight", dtype: "F32", shape: [4, 2], values: new Float32Array(8) },
      ]);
      const before = (await readdir(cacheRoot)).sort();
      await expect(build([lora(bogus, 1, 1)])).rejects.toThrow(/lora_unet_no_such_module/);
      expect((await readdir(cacheRoot)).sort()).toEqual(before);
      const ignored = await build([lora(bogus, 1, 1, true)]);
      expect(ignored.summary?.rebuiltParts).toEqual(["unet"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
