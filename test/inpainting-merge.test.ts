/**
 * "Add difference" (server/models/checkpoint/inpainting-merge.ts) on the tiny checkpoints of
 * test/fixtures/make-tiny-merge-models.ts: the merged UNet weights are inpainting + (custom − base) × multiplier in
 * float32 (against our own arithmetic and against torch's, test/fixtures/merge-parity/weights.json from
 * test/parity/merge_fixture.py), conv_in.weight is the inpainting model's, the text encoder and VAE are custom's,
 * and every model that does not fit is refused in one line.
 */
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { SdArchitecture } from "../server/engines/onnx/graph/architecture.ts";
import { CheckpointError } from "../server/models/checkpoint/checkpoint-tensor.ts";
import {
  INPAINTING_MERGE_MULTIPLIER_MAX,
  INPAINTING_MERGE_MULTIPLIER_MIN,
  inpaintingMerge,
  inpaintingMergeMultiplierProblem,
} from "../server/models/checkpoint/inpainting-merge.ts";
import { openSdCheckpoint, type SdCheckpoint } from "../server/models/checkpoint/open-sd-checkpoint.ts";
import { PartWeights } from "../server/models/checkpoint/part-weights.ts";
import { writeSafetensors } from "./fixtures/checkpoint-writers.ts";
import { ldmTensors, TINY_SD15_ARCHITECTURE, tinyDiffusersTensors } from "./fixtures/make-tiny-checkpoint.ts";
import { ensureTinyMergeModels, TINY_MERGE_BASE_SEED, TINY_MERGE_CUSTOM_SEED, type TinyMergeModels } from "./fixtures/make-tiny-merge-models.ts";
import { float32FromBase64 } from "./helpers/parity-goldens.ts";

const PARITY = path.resolve(import.meta.dirname, "fixtures/merge-parity");

const source = z.object({ generator_version: z.number().int(), seed: z.number().int(), sha256: z.string() });
const weightsFile = z.object({
  sources: z.object({ inpainting: source, custom: source, base: source }),
  merges: z.array(z.object({ multiplier: z.number(), weights: z.record(z.string(), z.object({ shape: z.array(z.number().int()), data: z.string() })) })),
});
const goldens = weightsFile.parse(JSON.parse(await readFile(path.join(PARITY, "weights.json"), "utf8")));

let models: TinyMergeModels;
let inpainting: SdCheckpoint;
let custom: SdCheckpoint;
let base: SdCheckpoint;
let scratch: string;
const opened: SdCheckpoint[] = [];

async function open(file: string): Promise<SdCheckpoint> {
  const checkpoint = await openSdCheckpoint(file);
  opened.push(checkpoint);
  return checkpoint;
}

/** A tiny plain checkpoint of another architecture, written into the scratch folder. */
async function plainOf(name: string, architecture: SdArchitecture): Promise<SdCheckpoint> {
  const plain = { ...architecture, unet: { ...architecture.unet, inChannels: 4 } };
  const file = path.join(scratch, `${name}.safetensors`);
  // openCheckpoint takes a file whose first byte is 0x80 for a pickle, and a safetensors header length can start
  // with it (the wider model's does): a metadata entry moves the length off it.
  for (let pad = 0; ; pad += 8) {
    await writeSafetensors(file, ldmTensors(tinyDiffusersTensors(plain, 77), plain), pad === 0 ? undefined : { pad: "_".repeat(pad) });
    if ((await readFile(file)).readUInt8(0) !== 0x80) break;
  }
  return open(file);
}

/** The same checkpoint with its UNet weights edited (one dropped, one reshaped). */
function withUnet(checkpoint: SdCheckpoint, edit: (weights: PartWeights, name: string) => void): SdCheckpoint {
  const unet = new PartWeights(checkpoint.unet.file);
  for (const name of checkpoint.unet.names) edit(unet, name);
  return { ...checkpoint, unet };
}

const bytes = (values: Float32Array) => Buffer.from(values.buffer, values.byteOffset, values.byteLength);
const sha256 = async (file: string) => createHash("sha256").update(await readFile(file)).digest("hex");

/** inpainting + (custom − base) × m, one float32 rounding per operation. */
function expected(a: Float32Array, c: Float32Array, b: Float32Array, multiplier: number): Float32Array {
  const m = Math.fround(multiplier);
  return Float32Array.from(a, (value, i) => Math.fround(value + Math.fround(Math.fround(c[i] - b[i]) * m)));
}

beforeAll(async () => {
  models = await ensureTinyMergeModels();
  [inpainting, custom, base] = await Promise.all([models.inpainting, models.custom, models.base].map(open));
  scratch = await mkdtemp(path.join(os.tmpdir(), "maskflow-inpainting-merge-"));
}, 120_000);

afterAll(async () => {
  await Promise.all(opened.map((checkpoint) => checkpoint.close()));
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("the fixtures", () => {
  it("are the bytes test/parity/merge_fixture.py merged (rerun it after a generator change)", async () => {
    expect(goldens.sources.custom.seed).toBe(TINY_MERGE_CUSTOM_SEED);
    expect(goldens.sources.base.seed).toBe(TINY_MERGE_BASE_SEED);
    for (const role of ["inpainting", "custom", "base"] as const) {
      expect(await sha256(models[role]), role).toBe(goldens.sources[role].sha256);
    }
    expect(inpainting.architecture.unet.inChannels).toBe(9);
    expect(custom.architecture.unet.inChannels).toBe(4);
    expect(base.architecture.unet.inChannels).toBe(4);
  });
});

describe("inpaintingMerge: inpainting + (custom − base) × multiplier", () => {
  const sampled = [
    "time_embedding.linear_1.bias",
    "down_blocks.0.resnets.0.conv1.weight",
    "down_blocks.0.attentions.0.proj_in.weight",
    "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight",
    "up_blocks.1.resnets.0.conv_shortcut.weight",
    "conv_out.weight",
  ];

  for (const multiplier of [1, 0.5, 0.3, -1.7, INPAINTING_MERGE_MULTIPLIER_MAX]) {
    it(`multiplier ${multiplier}: sampled weights equal the float32 arithmetic exactly, and differ from every source`, async () => {
      const merged = inpaintingMerge({ inpainting, custom, base }, multiplier);
      for (const name of sampled) {
        const [a, c, b] = await Promise.all([inpainting.unet.read(name), custom.unet.read(name), base.unet.read(name)]);
        const ours = await merged.unet.read(name);
        expect(merged.unet.shape(name), name).toEqual(inpainting.unet.shape(name));
        expect(bytes(ours).equals(bytes(expected(a, c, b, multiplier))), name).toBe(true);
        for (const other of [a, c, b]) expect(bytes(ours).equals(bytes(other)), name).toBe(false);
      }
    });
  }

  for (const merge of goldens.merges) {
    it(`multiplier ${merge.multiplier}: equals torch's merge of diffusers' modules bit for bit (weights.json)`, async () => {
      const merged = inpaintingMerge({ inpainting, custom, base }, merge.multiplier);
      for (const [name, golden] of Object.entries(merge.weights)) {
        expect(merged.unet.shape(name), name).toEqual(golden.shape);
        expect(bytes(await merged.unet.read(name)).equals(bytes(float32FromBase64(golden.data))), name).toBe(true);
      }
    });
  }

  it("conv_in.weight is the inpainting model's 9-channel weight; conv_in.bias (the same shape in all three) is merged", async () => {
    const merged = inpaintingMerge({ inpainting, custom, base }, 1);
    expect(merged.unet.shape("conv_in.weight")).toEqual([32, 9, 3, 3]);
    expect(bytes(await merged.unet.read("conv_in.weight")).equals(bytes(await inpainting.unet.read("conv_in.weight")))).toBe(true);
    const [a, c, b] = await Promise.all([inpainting, custom, base].map((model) => model.unet.read("conv_in.bias")));
    expect(bytes(await merged.unet.read("conv_in.bias")).equals(bytes(expected(a, c, b, 1)))).toBe(true);
  });

  it("the text encoder and VAE are custom's; the architecture is the inpainting UNet's with custom's VAE and text encoder", async () => {
    const merged = inpaintingMerge({ inpainting, custom, base }, 1);
    expect(merged.textEncoder).toBe(custom.textEncoder);
    expect(merged.vae).toBe(custom.vae);
    for (const [weights, name] of [[merged.textEncoder, "text_model.encoder.layers.0.self_attn.q_proj.weight"], [merged.vae, "decoder.conv_in.weight"]] as const) {
      const ours = bytes(await weights.read(name));
      expect(ours.equals(bytes(await (weights === merged.vae ? custom.vae : custom.textEncoder).read(name))), name).toBe(true);
      expect(ours.equals(bytes(await (weights === merged.vae ? inpainting.vae : inpainting.textEncoder).read(name))), name).toBe(false);
    }
    expect(merged.architecture).toEqual({ unet: inpainting.architecture.unet, vae: custom.architecture.vae, textEncoder: custom.architecture.textEncoder });
    expect(merged.architecture.unet.inChannels).toBe(9);
    expect(merged.unet.names).toEqual(inpainting.unet.names);
  });

  it("multiplier 0 is the inpainting model's UNet, byte for byte, every weight", async () => {
    const merged = inpaintingMerge({ inpainting, custom, base }, 0);
    expect(merged.unet.names).toHaveLength(inpainting.unet.names.length);
    for (const name of merged.unet.names) {
      expect(bytes(await merged.unet.read(name)).equals(bytes(await inpainting.unet.read(name))), name).toBe(true);
    }
  });
});

describe("inpaintingMerge refuses, in one line", () => {
  const refusal = (make: () => unknown): CheckpointError => {
    try {
      make();
    } catch (error) {
      expect(error).toBeInstanceOf(CheckpointError);
      expect((error as Error).message).not.toContain("\n");
      return error as CheckpointError;
    }
    throw new Error("not refused");
  };

  it("an inpainting model that is not 9-channel", () => {
    const error = refusal(() => inpaintingMerge({ inpainting: custom, custom, base }, 1));
    expect(error.file).toBe(custom.source);
    expect(error.message).toBe(`${custom.source}: the inpainting model must have a 9-channel UNet (SD 1.5 inpainting); this one takes 4 channels`);
  });

  it("a custom model that is already an inpainting model, and a base that is one", () => {
    expect(refusal(() => inpaintingMerge({ inpainting, custom: inpainting, base }, 1)).message).toBe(
      `${inpainting.source}: the custom model is already an inpainting model (9-channel UNet): use it as it is, or merge its plain (4-channel) original`,
    );
    expect(refusal(() => inpaintingMerge({ inpainting, custom, base: inpainting }, 1)).message).toBe(
      `${inpainting.source}: the base model must be plain SD 1.x (4-channel UNet), not an inpainting model`,
    );
  });

  it("architectures that differ: widths, context width", async () => {
    const wider = await plainOf("wider", { ...TINY_SD15_ARCHITECTURE, unet: { ...TINY_SD15_ARCHITECTURE.unet, blockOutChannels: [64, 64] } });
    expect(refusal(() => inpaintingMerge({ inpainting, custom: wider, base }, 1)).message).toBe(
      `${wider.source}: the custom model's UNet differs from the inpainting model's: block widths [64, 64], not [32, 64]`,
    );
    const wideText = await plainOf("wide-text", {
      ...TINY_SD15_ARCHITECTURE,
      unet: { ...TINY_SD15_ARCHITECTURE.unet, crossAttentionDim: 128 },
      textEncoder: { ...TINY_SD15_ARCHITECTURE.textEncoder, hiddenSize: 128, intermediateSize: 512, heads: 2 },
    });
    expect(refusal(() => inpaintingMerge({ inpainting, custom, base: wideText }, 1)).message).toBe(
      `${wideText.source}: the base model's UNet differs from the inpainting model's: a 128-wide text context, not 64`,
    );
  });

  it("a UNet weight missing from one of them, or of another shape", () => {
    const dropped = "mid_block.attentions.0.proj_out.bias";
    const withoutOne = withUnet(base, (weights, name) => {
      if (name !== dropped) weights.add(name, base.unet.tensor(name)!, base.unet.shape(name));
    });
    expect(refusal(() => inpaintingMerge({ inpainting, custom, base: withoutOne }, 1)).message).toBe(
      `${base.source}: the base model has no UNet weight ${dropped}, which the inpainting model has`,
    );
    const inpaintingWithoutOne = withUnet(inpainting, (weights, name) => {
      if (name !== dropped) weights.add(name, inpainting.unet.tensor(name)!, inpainting.unet.shape(name));
    });
    expect(refusal(() => inpaintingMerge({ inpainting: inpaintingWithoutOne, custom, base }, 1)).message).toBe(
      `${inpainting.source}: the inpainting model has no UNet weight ${dropped}, which the custom model has`,
    );
    const reshaped = "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight";
    const flattened = withUnet(custom, (weights, name) => {
      const shape = custom.unet.shape(name)!;
      weights.add(name, custom.unet.tensor(name)!, name === reshaped ? [shape[0] * shape[1]] : shape);
    });
    expect(refusal(() => inpaintingMerge({ inpainting, custom: flattened, base }, 1)).message).toBe(
      `${custom.source}: the custom model's UNet weight ${reshaped} is 4096, the inpainting model's 64×64`,
    );
  });

  it(`a multiplier outside ${INPAINTING_MERGE_MULTIPLIER_MIN}…${INPAINTING_MERGE_MULTIPLIER_MAX} or not a number (the limits exported for recipe makers)`, () => {
    expect([INPAINTING_MERGE_MULTIPLIER_MIN, INPAINTING_MERGE_MULTIPLIER_MAX]).toEqual([-4, 4]);
    for (const ok of [-4, -0.5, 0, 1, 4]) expect(inpaintingMergeMultiplierProblem(ok), String(ok)).toBeUndefined();
    expect(inpaintingMergeMultiplierProblem(4.5)).toBe("the merge multiplier must be from -4 to 4, not 4.5");
    expect(inpaintingMergeMultiplierProblem(Number.NaN)).toBe("the merge multiplier must be a number, not NaN");
    expect(refusal(() => inpaintingMerge({ inpainting, custom, base }, -4.01)).message).toBe(
      `${custom.source}: the merge multiplier must be from -4 to 4, not -4.01`,
    );
  });
});
