/**
 * Soft inpainting against diffusers: test/fixtures/diffusers-parity/soft-inpaint-cases holds what diffusers'
 * StableDiffusionInpaintPipeline made on the tiny real-architecture model with differential diffusion added through
 * its own hooks (test/parity/soft_inpaint_fixture.py: the community pipelines' rule, on a grey mask). Maskflow runs
 * the same cases with soft_mask and must give the same pictures to onnxruntime-versus-torch rounding; without
 * soft_mask it gives clearly different ones, so the comparison tests the option and not the pipeline around it.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { Mask, RgbImage } from "../nodes/socket-types.ts";
import { OnnxEngine } from "../server/engines/onnx/onnx-engine.ts";
import { diffusersCaseSchema } from "./helpers/diffusers-e2e-cases.ts";
import { compareInpaintImages } from "./helpers/image-distance.ts";

const FIXTURES = path.join(import.meta.dirname, "fixtures", "diffusers-parity");
const CASES = path.join(FIXTURES, "soft-inpaint-cases");
const MODEL = path.join(FIXTURES, "tiny-inpaint");

const casesFile = z.object({ cases: z.array(diffusersCaseSchema) });
const { cases } = casesFile.parse(JSON.parse(await readFile(path.join(CASES, "cases.json"), "utf8")));
const engine = new OnnxEngine({ threads: 1 });
const scratch = await mkdtemp(path.join(os.tmpdir(), "maskflow-soft-parity-"));

afterAll(async () => {
  await engine.release();
  await rm(scratch, { recursive: true, force: true });
});

async function loadRgb(file: string): Promise<RgbImage> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data) };
}

async function loadMask(file: string): Promise<Mask> {
  const { data, info } = await sharp(file).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data) };
}

async function savePng(image: RgbImage, name: string): Promise<string> {
  const file = path.join(scratch, name);
  await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } }).png().toFile(file);
  return file;
}

describe("soft inpainting against diffusers' inpainting pipeline with the community differential-diffusion rule", () => {
  it("the golden mask is grey: most of its pixels are neither 0 nor 255", async () => {
    const mask = await loadMask(path.join(CASES, cases[0].mask));
    const grey = mask.data.filter((v) => v > 0 && v < 255).length;
    expect(grey / mask.data.length).toBeGreaterThan(0.3);
  });

  for (const c of cases) {
    it(`${c.name}: ${c.scheduler}, strength ${c.strength}, guidance ${c.guidance}, ${c.samples} sample(s): PSNR ≥ 60 dB and ≤ 2 grey levels with soft_mask, under 40 dB without`, async () => {
      const request = {
        image: await loadRgb(path.join(CASES, c.picture)),
        mask: await loadMask(path.join(CASES, c.mask)),
        prompt: c.prompt,
        negativePrompt: c.negative,
        scheduler: c.scheduler,
        steps: c.steps,
        guidance: c.guidance,
        strength: c.strength,
        seed: BigInt(c.seed),
        samples: c.samples,
        width: c.width,
        height: c.height,
      };
      const soft = await engine.inpaint({ ...request, softMask: true }, { modelDir: MODEL });
      const plain = await engine.inpaint(request, { modelDir: MODEL });
      expect(soft.images).toHaveLength(c.samples);
      for (let n = 0; n < c.samples; n++) {
        const golden = path.join(CASES, c.diffusers_images[n]);
        const ours = await compareInpaintImages(await savePng(soft.images[n], `${c.name}-${n}-soft.png`), golden);
        expect(ours.psnr, `${c.name} sample ${n}`).toBeGreaterThanOrEqual(60);
        expect(ours.maxDifference).toBeLessThanOrEqual(2);
        const without = await compareInpaintImages(await savePng(plain.images[n], `${c.name}-${n}-plain.png`), golden);
        expect(without.psnr).toBeLessThan(40);
      }
    });
  }
});
