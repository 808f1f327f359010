/**
 * A user with only a checkpoint file: `maskflow run --model FILE.safetensors` builds Maskflow's own graphs on
 * first use and inpaints; the pictures are compared with diffusers' StableDiffusionInpaintPipeline run on the
 * same weights (test/parity/checkpoint_fixture.py), and the four forms of the model give the same picture.
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureTinyCheckpoints, type TinyCheckpointPaths } from "./fixtures/make-tiny-checkpoint.ts";
import { type DiffusersCase, type DiffusersCasesRun, loadDiffusersCases, runDiffusersCases } from "./helpers/diffusers-e2e-cases.ts";
import { compareInpaintImages } from "./helpers/image-distance.ts";

const CASES = path.resolve(import.meta.dirname, "fixtures/checkpoint-parity/inpaint-cases");
const cases: DiffusersCase[] = await loadDiffusersCases(CASES);

let tiny: TinyCheckpointPaths;
let modelsDir: string;
const runs = new Map<string, DiffusersCasesRun>();
const previousModelsDir = process.env.MASKFLOW_MODELS_DIR;

beforeAll(async () => {
  tiny = await ensureTinyCheckpoints();
  // Builds of a checkpoint named by --model go to the models folder's .built/: a temporary one here.
  modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-checkpoint-e2e-"));
  process.env.MASKFLOW_MODELS_DIR = modelsDir;
  for (const [form, model] of [["single-file", tiny.singleFile], ["diffusers", tiny.diffusers], ["ckpt", tiny.ckpt], ["fp16", tiny.fp16]] as const) {
    runs.set(form, await runDiffusersCases(cases, { casesDir: CASES, model }));
  }
}, 240_000);

afterAll(async () => {
  if (previousModelsDir === undefined) delete process.env.MASKFLOW_MODELS_DIR;
  else process.env.MASKFLOW_MODELS_DIR = previousModelsDir;
  if (modelsDir) await rm(modelsDir, { recursive: true, force: true });
});

describe("maskflow run --model CHECKPOINT against diffusers' pipeline on the same weights", () => {
  it("builds on first use, once per content, into the models folder's .built/", async () => {
    for (const [form, run] of runs) {
      expect(run.stderr, form).not.toMatch(/error|failed/i);
      expect(run.code, form).toBe(0);
    }
    expect(runs.get("single-file")?.stderr).toMatch(/reading checkpoint 100 %[\s\S]*building (text_encoder|unet|vae_encoder|vae_decoder) \d+ %/);
    // single file, diffusers folder and .ckpt are three sets of files; fp16 another: four builds.
    expect((await readdir(path.join(modelsDir, ".built"))).filter((name) => !name.startsWith(".") && name !== "parts")).toHaveLength(4);
  });

  for (const c of cases) {
    it(`${c.name}: ${c.scheduler}, ${c.steps} steps, guidance ${c.guidance}: PSNR ≥ 60 dB, at most 2 grey levels off`, () => {
      const results = runs.get("single-file")?.results.get(c.name) ?? [];
      expect(results).toHaveLength(c.samples);
      for (const { distance } of results) {
        expect(distance.psnr).toBeGreaterThanOrEqual(60);
        expect(distance.maxDifference).toBeLessThanOrEqual(2);
      }
    });
  }

  it("the diffusers folder and the .ckpt give the single file's pictures; the fp16 file is within 40 dB of them", () => {
    for (const c of cases) {
      const reference = runs.get("single-file")?.results.get(c.name)?.[0]?.distance.psnr;
      for (const form of ["diffusers", "ckpt"]) {
        expect(runs.get(form)?.results.get(c.name)?.[0]?.distance.psnr, `${form} ${c.name}`).toBe(reference);
      }
      const half = runs.get("fp16")?.results.get(c.name)?.[0]?.distance.psnr ?? 0;
      expect(half, `fp16 ${c.name} against diffusers' fp32`).toBeGreaterThanOrEqual(40);
    }
  });
});
