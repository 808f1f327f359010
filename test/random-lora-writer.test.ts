/**
 * The streamed random LoRA writer (scripts/checkpoints/write-random-lora.ts), which the checkpoint-build bench's
 * lcm phase uses in place of latent-consistency/lcm-lora-sdv1-5: at full size it has LCM-LoRA's 278 modules and
 * the real file's size to the byte, and what it writes is a LoRA Maskflow reads and maps onto every module it names.
 */
import { mkdtemp, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SD15_INPAINTING_ARCHITECTURE, textEncoderSpecs, unetSpecs } from "../scripts/checkpoints/sd15-checkpoint-layout.ts";
import { lcmLoraModules, randomLcmLoraBytes, writeRandomLcmLora } from "../scripts/checkpoints/write-random-lora.ts";
import { LCM_LORA } from "../server/models/helper-model-catalog.ts";
import { openLora } from "../server/models/checkpoint/lora/lora-file.ts";
import { mapLoraModules } from "../server/models/checkpoint/lora/lora-key-map.ts";
import { TINY_SD15_ARCHITECTURE } from "./fixtures/make-tiny-checkpoint.ts";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-random-lora-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("writeRandomLcmLora", () => {
  it("lays out LCM-LoRA for SD 1.5: 278 modules, 67,252,502 values, the real file's size to the byte", () => {
    const modules = lcmLoraModules(SD15_INPAINTING_ARCHITECTURE.unet);
    expect(modules).toHaveLength(278);
    const values = modules.reduce((sum, m) => sum + [m.down, m.up].reduce((s, shape) => s + shape.reduce((a, b) => a * b, 1), 0) + 1, 0);
    expect(values).toBe(67_252_502);
    expect(randomLcmLoraBytes(SD15_INPAINTING_ARCHITECTURE.unet)).toBe(LCM_LORA.files[0].size);
    const byKey = new Map(modules.map((m) => [m.key, m]));
    expect(byKey.get("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k")?.down).toEqual([64, 768]);
    expect(byKey.get("lora_unet_up_blocks_0_upsamplers_0_conv")).toMatchObject({ down: [64, 1280, 3, 3], up: [1280, 64, 1, 1] });
    expect(byKey.has("lora_unet_conv_in")).toBe(false);
  });

  it("writes a LoRA that Maskflow opens and maps onto every module it names (tiny architecture)", async () => {
    const file = path.join(dir, "tiny-lcm-lora.safetensors");
    const summary = await writeRandomLcmLora(file, { unet: TINY_SD15_ARCHITECTURE.unet, seed: 7 });
    expect((await stat(file)).size).toBe(summary.bytes);
    expect(summary.bytes).toBe(randomLcmLoraBytes(TINY_SD15_ARCHITECTURE.unet));
    const lora = await openLora(file);
    try {
      expect(lora.modules).toHaveLength(summary.modules);
      expect(lora.modules.every((m) => m.rank === 64 && m.alpha === 8 && m.down.dtype === "F16")).toBe(true);
      const part = (specs: ReturnType<typeof unetSpecs>) => ({ names: specs.map((s) => s.name), shape: (name: string) => specs.find((s) => s.name === name)?.shape });
      const map = mapLoraModules(lora, { unet: part(unetSpecs(TINY_SD15_ARCHITECTURE.unet)), textEncoder: part(textEncoderSpecs(TINY_SD15_ARCHITECTURE.textEncoder)) }, TINY_SD15_ARCHITECTURE.unet.layersPerBlock);
      expect(map.unmatched).toEqual([]);
      expect(map.matched).toHaveLength(summary.modules);
    } finally {
      await lora.close();
    }
  });
});
