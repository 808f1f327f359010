/**
 * A user with a checkpoint and LoRAs: `maskflow run --model FILE --lora LORA:SM:SC` builds the model with the LoRAs
 * applied and inpaints; the pictures are compared with diffusers' StableDiffusionInpaintPipeline run on the same
 * weights with the LoRAs merged by plain arithmetic (test/parity/lora_fixture.py): kohya with LDM names, kohya with
 * diffusers names and LoCon convolutions, PEFT, and two LoRAs stacked, each at its own UNet and CLIP strengths.
 */
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { ensureTinyCheckpoints, type TinyCheckpointPaths } from "./fixtures/make-tiny-checkpoint.ts";
import { ensureTinyLoras, TINY_LORA_GENERATOR_VERSION, TINY_LORA_KINDS, type TinyLoraPaths } from "./fixtures/make-tiny-lora.ts";
import { type DiffusersCase, type DiffusersCasesRun, diffusersCaseSchema, runDiffusersCases } from "./helpers/diffusers-e2e-cases.ts";
import { compareInpaintImages } from "./helpers/image-distance.ts";

const CASES = path.resolve(import.meta.dirname, "fixtures/lora-parity");

const loraCaseSchema = diffusersCaseSchema.extend({
  loras: z.array(z.object({ file: z.string(), strength_model: z.number(), strength_clip: z.number() })).min(1),
  psnr_against_no_lora: z.number(),
});
const fixture = z
  .object({
    diffusers: z.string(),
    checkpoint: z.object({ single_file_sha256: z.string() }),
    lora_generator: z.object({ version: z.number() }),
    lora_files: z.record(z.string(), z.string()),
    no_lora_image: z.string(),
    cases: z.array(loraCaseSchema),
  })
  .parse(JSON.parse(await readFile(path.join(CASES, "cases.json"), "utf8")));
type LoraCase = z.infer<typeof loraCaseSchema>;

let tiny: TinyCheckpointPaths;
let loras: TinyLoraPaths;
let modelsDir: string;
const runs = new Map<string, DiffusersCasesRun>();
const previousModelsDir = process.env.MASKFLOW_MODELS_DIR;

const sha256 = async (file: string) => createHash("sha256").update(await readFile(file)).digest("hex");
const fileOf = (name: string) => path.join(loras.dir, name);
const loraArgs = (c: LoraCase) => c.loras.flatMap((lora) => ["--lora", `${fileOf(lora.file)}:${lora.strength_model}:${lora.strength_clip}`]);

beforeAll(async () => {
  tiny = await ensureTinyCheckpoints();
  loras = await ensureTinyLoras();
  modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-lora-e2e-"));
  process.env.MASKFLOW_MODELS_DIR = modelsDir;
  for (const c of fixture.cases) {
    const theCase: DiffusersCase = diffusersCaseSchema.parse(c);
    runs.set(c.name, await runDiffusersCases([theCase], { casesDir: CASES, model: tiny.singleFile, extraArgs: loraArgs(c) }));
  }
}, 300_000);

afterAll(async () => {
  if (previousModelsDir === undefined) delete process.env.MASKFLOW_MODELS_DIR;
  else process.env.MASKFLOW_MODELS_DIR = previousModelsDir;
  if (modelsDir) await rm(modelsDir, { recursive: true, force: true });
});

describe("maskflow run --model CHECKPOINT --lora FILE:SM:SC against diffusers with the LoRAs merged", () => {
  it("the goldens were made from the LoRA files this generator writes, on this checkpoint", async () => {
    expect(fixture.lora_generator.version, "rerun test/parity/lora_fixture.py after bumping TINY_LORA_GENERATOR_VERSION").toBe(TINY_LORA_GENERATOR_VERSION);
    for (const kind of TINY_LORA_KINDS) {
      const name = path.basename(loras[kind]);
      expect(await sha256(loras[kind]), `${name}: rerun test/parity/lora_fixture.py`).toBe(fixture.lora_files[name]);
    }
    expect(await sha256(tiny.singleFile)).toBe(fixture.checkpoint.single_file_sha256);
  });

  it("every LoRA changed diffusers' picture well beyond rounding (under 35 dB from the picture without it)", async () => {
    for (const c of fixture.cases) {
      const distance = await compareInpaintImages(path.join(CASES, c.diffusers_images[0]), path.join(CASES, fixture.no_lora_image));
      expect(distance.psnr, c.name).toBeLessThan(35);
    }
  });

  for (const c of fixture.cases) {
    const strengths = c.loras.map((lora) => `${lora.file} model ${lora.strength_model} / clip ${lora.strength_clip}`).join(" + ");
    it(`${c.name}: ${strengths}: PSNR ≥ 60 dB, at most 2 grey levels off`, () => {
      const run = runs.get(c.name);
      expect(run?.stderr, c.name).not.toMatch(/error|failed/i);
      expect(run?.code, run?.stderr).toBe(0);
      const results = run?.results.get(c.name) ?? [];
      expect(results).toHaveLength(c.samples);
      for (const { distance } of results) {
        expect(distance.psnr).toBeGreaterThanOrEqual(60);
        expect(distance.maxDifference).toBeLessThanOrEqual(2);
      }
    });
  }
});
