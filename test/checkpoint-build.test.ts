/**
 * Maskflow's own ONNX graphs, built in TypeScript from a checkpoint, against diffusers' torch modules on the same
 * weights: test/fixtures/make-tiny-checkpoint.ts writes a tiny SD 1.5-inpainting-layout model in four forms, and
 * test/parity/checkpoint_fixture.py recorded what diffusers' UNet2DConditionModel, AutoencoderKL and CLIP text
 * model compute from it (modules.json). The graphs are built through `maskflow models import`, as a user does.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureTinyCheckpoints, type TinyCheckpointPaths } from "./fixtures/make-tiny-checkpoint.ts";
import { distance, float32FromBase64 } from "./helpers/parity-goldens.ts";
import { runModelsCommand } from "./helpers/run-models-command.ts";

const GOLDENS = path.resolve(import.meta.dirname, "fixtures/checkpoint-parity/modules.json");

interface GoldenTensor {
  readonly shape: number[];
  readonly data: string;
}
interface Goldens {
  readonly text_encoder: { input_ids: number[]; last_hidden_state: GoldenTensor };
  readonly unet: { sample: GoldenTensor; encoder_hidden_states: GoldenTensor; cases: Array<{ timestep: number; out_sample: GoldenTensor }> };
  readonly vae_encoder: { sample: GoldenTensor; latent_parameters: GoldenTensor };
  readonly vae_decoder: { latent_sample: GoldenTensor; sample: GoldenTensor };
}

const goldens = JSON.parse(await readFile(GOLDENS, "utf8")) as Goldens;
const tensorOf = (golden: GoldenTensor) => new ort.Tensor("float32", float32FromBase64(golden.data), golden.shape);

let tiny: TinyCheckpointPaths;
let modelsDir: string;

async function run(part: string, feeds: Record<string, ort.Tensor>, output: string, model = "single-file"): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(path.join(modelsDir, model, part, "model.onnx"), { intraOpNumThreads: 1 });
  try {
    return (await session.run(feeds))[output].data as Float32Array;
  } finally {
    await session.release();
  }
}

beforeAll(async () => {
  tiny = await ensureTinyCheckpoints();
  modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-checkpoint-build-"));
  for (const [name, source] of [["single-file", tiny.singleFile], ["diffusers", tiny.diffusers], ["ckpt", tiny.ckpt], ["fp16", tiny.fp16]] as const) {
    const result = await runModelsCommand(["import", source, "--name", name, "--models", modelsDir], {});
    expect(result.stderr, result.stderr).not.toMatch(/error|refused/i);
    expect(result.code, result.stderr).toBe(0);
  }
}, 180_000);

afterAll(async () => {
  if (modelsDir) await rm(modelsDir, { recursive: true, force: true });
});

describe("graphs built from a single-file checkpoint equal diffusers' torch modules on the same weights", () => {
  it("writes the engine's model folder: four graphs with external data at 64 KiB-aligned offsets, configs, the SD 1.5 scheduler", async () => {
    const root = path.join(modelsDir, "single-file");
    expect((await readdir(root)).sort()).toEqual([".maskflow-build.json", "model_index.json", "scheduler", "text_encoder", "unet", "vae_decoder", "vae_encoder"]);
    const index = JSON.parse(await readFile(path.join(root, "model_index.json"), "utf8")) as { _class_name: string };
    expect(index._class_name).toBe("OnnxStableDiffusionInpaintPipeline");
    const unetConfig = JSON.parse(await readFile(path.join(root, "unet", "config.json"), "utf8")) as Record<string, unknown>;
    expect(unetConfig).toMatchObject({ in_channels: 9, block_out_channels: [32, 64], layers_per_block: 1, cross_attention_dim: 64, attention_head_dim: 8 });
    const scheduler = JSON.parse(await readFile(path.join(root, "scheduler", "scheduler_config.json"), "utf8")) as Record<string, unknown>;
    expect(scheduler).toMatchObject({ beta_schedule: "scaled_linear", beta_start: 0.00085, beta_end: 0.012, steps_offset: 1 });
  });

  it("text encoder: last_hidden_state within float32 rounding of transformers' CLIPTextModel", async () => {
    const ids = goldens.text_encoder.input_ids;
    const ours = await run("text_encoder", { input_ids: new ort.Tensor("int32", Int32Array.from(ids), [1, ids.length]) }, "last_hidden_state");
    const d = distance(ours, float32FromBase64(goldens.text_encoder.last_hidden_state.data));
    expect(d.relative).toBeLessThan(2e-5);
  });

  for (const [index, c] of goldens.unet.cases.entries()) {
    it(`UNet at timestep ${c.timestep}: out_sample within float32 rounding of UNet2DConditionModel (case ${index})`, async () => {
      const ours = await run(
        "unet",
        {
          sample: tensorOf(goldens.unet.sample),
          timestep: new ort.Tensor("int64", BigInt64Array.from([BigInt(c.timestep)]), [1]),
          encoder_hidden_states: tensorOf(goldens.unet.encoder_hidden_states),
        },
        "out_sample",
      );
      expect(distance(ours, float32FromBase64(c.out_sample.data)).relative).toBeLessThan(2e-5);
    });
  }

  it("VAE encoder (mean ‖ logvar) and decoder within float32 rounding of AutoencoderKL", async () => {
    const latent = await run("vae_encoder", { sample: tensorOf(goldens.vae_encoder.sample) }, "latent_parameters");
    expect(distance(latent, float32FromBase64(goldens.vae_encoder.latent_parameters.data)).relative).toBeLessThan(2e-5);
    const picture = await run("vae_decoder", { latent_sample: tensorOf(goldens.vae_decoder.latent_sample) }, "sample");
    expect(distance(picture, float32FromBase64(goldens.vae_decoder.sample.data)).relative).toBeLessThan(2e-5);
  });
});

describe("one model in four forms", () => {
  it("the diffusers folder and the .ckpt build the very same weights as the single file", async () => {
    for (const part of ["text_encoder", "unet", "vae_encoder", "vae_decoder"]) {
      const reference = await readFile(path.join(modelsDir, "single-file", part, "model.onnx_data"));
      for (const form of ["diffusers", "ckpt"]) {
        const built = await readFile(path.join(modelsDir, form, part, "model.onnx_data"));
        expect(built.equals(reference), `${form}/${part}`).toBe(true);
      }
    }
  });

  it("the fp16 single file builds fp32 graphs whose UNet output stays within fp16 rounding", async () => {
    const feeds = {
      sample: tensorOf(goldens.unet.sample),
      timestep: new ort.Tensor("int64", BigInt64Array.from([500n]), [1]),
      encoder_hidden_states: tensorOf(goldens.unet.encoder_hidden_states),
    };
    const half = await run("unet", feeds, "out_sample", "fp16");
    const d = distance(half, float32FromBase64(goldens.unet.cases[0].out_sample.data));
    expect(d.relative).toBeGreaterThan(0);
    expect(d.relative).toBeLessThan(1e-2);
    const build = JSON.parse(await readFile(path.join(modelsDir, "fp16", ".maskflow-build.json"), "utf8")) as { summary: { floatTypes: string[] } };
    expect(build.summary.floatTypes).toEqual(["F16"]);
  });
});

describe("builds are kept by content", () => {
  it("importing the same checkpoint again finds it built; another checkpoint under a taken name is refused", async () => {
    const again = await runModelsCommand(["import", tiny.singleFile, "--name", "single-file", "--models", modelsDir], {});
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/already built from this checkpoint/);
    const other = await runModelsCommand(["import", tiny.ckpt, "--name", "single-file", "--models", modelsDir], {});
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/already exists \(built from something else\)/);
  });
});

describe("checkpoints Maskflow cannot build are named in one line, and nothing is left behind", () => {
  const cases: Array<{ what: string; header: Record<string, { dtype: string; shape: number[] }>; expected: RegExp }> = [
    {
      what: "an SDXL checkpoint",
      header: { "conditioner.embedders.1.model.positional_embedding": { dtype: "F32", shape: [77, 4] }, "model.diffusion_model.input_blocks.0.0.weight": { dtype: "F32", shape: [4, 4, 1, 1] } },
      expected: /this is an SDXL checkpoint: Maskflow builds SD 1\.x models/,
    },
    {
      what: "an SD 2.x checkpoint",
      header: { "cond_stage_model.model.token_embedding.weight": { dtype: "F32", shape: [4, 4] }, "model.diffusion_model.input_blocks.0.0.weight": { dtype: "F32", shape: [4, 4, 1, 1] } },
      expected: /this is an SD 2\.x checkpoint/,
    },
    {
      what: "a LoRA",
      header: { "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": { dtype: "F32", shape: [4, 4] } },
      expected: /this is a LoRA: it changes a model, it is not one/,
    },
    {
      what: "a VAE alone",
      header: { "encoder.conv_in.weight": { dtype: "F32", shape: [4, 3, 3, 3] }, "decoder.conv_in.weight": { dtype: "F32", shape: [4, 4, 3, 3] } },
      expected: /this is a VAE alone/,
    },
  ];
  for (const c of cases) {
    it(`${c.what}`, async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-bad-checkpoint-"));
      try {
        const header: Record<string, unknown> = {};
        let offset = 0;
        for (const [name, spec] of Object.entries(c.header)) {
          const bytes = spec.shape.reduce((a, b) => a * b, 1) * 4;
          header[name] = { ...spec, data_offsets: [offset, offset + bytes] };
          offset += bytes;
        }
        const json = Buffer.from(JSON.stringify(header));
        const length = Buffer.alloc(8);
        length.writeBigUInt64LE(BigInt(json.length));
        const file = path.join(dir, "model.safetensors");
        await writeFile(file, Buffer.concat([length, json, Buffer.alloc(offset)]));
        const result = await runModelsCommand(["import", file, "--name", "x", "--models", path.join(dir, "models")], {});
        expect(result.code).toBe(1);
        expect(result.stderr).toMatch(c.expected);
        expect(result.stderr.trim().split("\n")).toHaveLength(2); // "importing …" and the one line
        expect(await readdir(path.join(dir, "models")).catch(() => [])).not.toContain("x");
        expect((await readdir(path.join(dir, "models")).catch(() => [] as string[])).filter((name) => name.includes("partial"))).toEqual([]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  it("a truncated download", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-bad-checkpoint-"));
    try {
      const whole = await readFile(tiny.singleFile);
      const file = path.join(dir, "cut.safetensors");
      await writeFile(file, whole.subarray(0, Math.floor(whole.length / 2)));
      const result = await runModelsCommand(["import", file, "--models", path.join(dir, "models")], {});
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/truncated/);
      expect(await readdir(path.join(dir, "models")).catch(() => [])).not.toContain("cut");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
