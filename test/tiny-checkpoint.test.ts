/**
 * The tiny SD 1.5 inpainting checkpoint (test/fixtures/make-tiny-checkpoint.ts): its four forms exist with the real
 * layouts' keys and shapes, the generator gives the same bytes every run (the bytes test/parity/checkpoint_fixture.py
 * made its goldens from), and those goldens are present with the shapes the graph tests will read.
 * The headers and the zip are parsed here by hand, independently of Maskflow's checkpoint readers.
 */
import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { crc32 } from "node:zlib";
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { encodeSafetensors } from "./fixtures/checkpoint-writers.ts";
import {
  TINY_CHECKPOINT_GENERATOR_VERSION,
  ensureTinyCheckpoints,
  writeTinyCheckpoints,
  type TinyCheckpointPaths,
} from "./fixtures/make-tiny-checkpoint.ts";
import { diffusersCaseSchema } from "./helpers/diffusers-e2e-cases.ts";
import { float32FromBase64 } from "./helpers/parity-goldens.ts";

const GOLDENS = path.resolve(import.meta.dirname, "fixtures/checkpoint-parity");

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

async function safetensorsHeader(file: string): Promise<{ tensors: Map<string, HeaderEntry>; metadata: unknown; size: number }> {
  const bytes = await readFile(file);
  const length = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString("utf8")) as Record<string, unknown>;
  const { __metadata__: metadata, ...rest } = header;
  return { tensors: new Map(Object.entries(rest as Record<string, HeaderEntry>)), metadata, size: bytes.length - 8 - length };
}

/** The zip's records from its central directory: name, data (stored), and the CRC-32 the directory claims. */
function zipRecords(bytes: Buffer): Array<{ name: string; data: Buffer; crc: number; dataOffset: number }> {
  const end = bytes.length - 22;
  expect(bytes.readUInt32LE(end)).toBe(0x06054b50);
  const count = bytes.readUInt16LE(end + 10);
  let at = bytes.readUInt32LE(end + 16);
  const records = [];
  for (let i = 0; i < count; i++) {
    expect(bytes.readUInt32LE(at)).toBe(0x02014b50);
    expect(bytes.readUInt16LE(at + 10)).toBe(0); // stored
    const crc = bytes.readUInt32LE(at + 16);
    const size = bytes.readUInt32LE(at + 20);
    const nameLength = bytes.readUInt16LE(at + 28);
    const local = bytes.readUInt32LE(at + 42);
    const name = bytes.subarray(at + 46, at + 46 + nameLength).toString("utf8");
    const dataOffset = local + 30 + bytes.readUInt16LE(local + 26) + bytes.readUInt16LE(local + 28);
    records.push({ name, data: bytes.subarray(dataOffset, dataOffset + size), crc, dataOffset });
    at += 46 + nameLength;
  }
  return records;
}

async function hashes(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    out.set(path.relative(dir, file), createHash("sha256").update(await readFile(file)).digest("hex"));
  }
  return out;
}

const goldenTensor = z.object({ shape: z.array(z.number().int()), data: z.string() });
const modulesFile = z.object({
  diffusers: z.string(),
  torch: z.string(),
  generator: z.object({ version: z.number().int(), seed: z.number().int() }),
  single_file_sha256: z.string(),
  text_encoder: z.object({ prompt: z.string(), input_ids: z.array(z.number().int()), last_hidden_state: goldenTensor }),
  unet: z.object({
    sample: goldenTensor,
    encoder_hidden_states: goldenTensor,
    cases: z.array(z.object({ timestep: z.number(), out_sample: goldenTensor })),
  }),
  vae_encoder: z.object({ sample: goldenTensor, latent_parameters: goldenTensor }),
  vae_decoder: z.object({ latent_sample: goldenTensor, sample: goldenTensor }),
});

let paths: TinyCheckpointPaths;

beforeAll(async () => {
  paths = await ensureTinyCheckpoints();
});

describe("tiny SD 1.5 inpainting checkpoint", () => {
  it("writes every form, stamped with the generator version", async () => {
    const stamp = JSON.parse(await readFile(path.join(paths.dir, ".maskflow-fixture.json"), "utf8"));
    expect(stamp).toMatchObject({ generator: "maskflow-tiny-checkpoint-generator", version: TINY_CHECKPOINT_GENERATOR_VERSION });
    const files = await hashes(paths.dir);
    for (const file of [
      "single-file.safetensors", "model.ckpt", "fp16.safetensors", "plain.safetensors",
      "diffusers/model_index.json", "diffusers/unet/config.json", "diffusers/unet/diffusion_pytorch_model.safetensors",
      "diffusers/vae/config.json", "diffusers/vae/diffusion_pytorch_model.safetensors", "diffusers/text_encoder/config.json",
      "diffusers/text_encoder/model.safetensors", "diffusers/tokenizer/vocab.json", "diffusers/tokenizer/merges.txt",
      "diffusers/scheduler/scheduler_config.json",
    ]) {
      expect(files.has(file), file).toBe(true);
    }
  });

  it("is deterministic: a fresh run gives the same bytes, those the parity goldens were made from", async () => {
    const modules = modulesFile.parse(JSON.parse(await readFile(path.join(GOLDENS, "modules.json"), "utf8")));
    expect(modules.generator.version).toBe(TINY_CHECKPOINT_GENERATOR_VERSION);
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-tiny-checkpoint-"));
    try {
      await writeTinyCheckpoints(dir);
      const fresh = await hashes(dir);
      expect(fresh).toEqual(await hashes(paths.dir));
      expect(fresh.get("single-file.safetensors")).toBe(modules.single_file_sha256);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("single-file.safetensors has the LDM / A1111 keys and shapes", async () => {
    const { tensors, metadata, size } = await safetensorsHeader(paths.singleFile);
    expect(metadata).toBeUndefined();
    const shape = (name: string) => tensors.get(name)?.shape;
    expect(shape("model.diffusion_model.input_blocks.0.0.weight")).toEqual([32, 9, 3, 3]);
    expect(shape("first_stage_model.encoder.mid.attn_1.q.weight")).toEqual([64, 64, 1, 1]);
    expect(shape("first_stage_model.decoder.mid.attn_1.proj_out.weight")).toEqual([64, 64, 1, 1]);
    expect(shape("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight")).toEqual([49408, 64]);
    expect(tensors.get("cond_stage_model.transformer.text_model.embeddings.position_ids")).toMatchObject({ dtype: "I64", shape: [1, 77] });
    // LDM numbers the decoder's levels from the lowest resolution: up.2 is diffusers' up_blocks.0 (64 wide).
    expect(shape("first_stage_model.decoder.up.2.block.0.conv1.weight")).toEqual([64, 64, 3, 3]);
    expect(shape("first_stage_model.decoder.up.1.block.0.nin_shortcut.weight")).toEqual([32, 64, 1, 1]);
    expect(shape("first_stage_model.decoder.up.0.block.2.conv2.weight")).toBeUndefined(); // layers_per_block 1: two blocks
    expect(shape("first_stage_model.decoder.up.0.upsample.conv.weight")).toBeUndefined(); // the top level does not upsample
    expect(shape("model.diffusion_model.input_blocks.1.1.proj_in.weight")).toEqual([32, 32, 1, 1]);
    expect(shape("model.diffusion_model.input_blocks.2.0.op.weight")).toEqual([32, 32, 3, 3]);
    expect(shape("model.diffusion_model.input_blocks.3.0.skip_connection.weight")).toEqual([64, 32, 1, 1]);
    expect(shape("model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight")).toEqual([64, 64]);
    expect(shape("model.diffusion_model.output_blocks.0.0.in_layers.2.weight")).toEqual([64, 128, 3, 3]);
    expect(shape("model.diffusion_model.output_blocks.1.1.conv.weight")).toEqual([64, 64, 3, 3]);
    expect(shape("model.diffusion_model.output_blocks.3.1.transformer_blocks.0.ff.net.0.proj.weight")).toEqual([256, 32]);
    expect(shape("model.diffusion_model.time_embed.2.weight")).toEqual([128, 128]);
    expect(shape("model.diffusion_model.out.2.weight")).toEqual([4, 32, 3, 3]);
    const names = [...tensors.keys()];
    const counted = (prefix: string) => names.filter((name) => name.startsWith(prefix)).length;
    expect([counted("model.diffusion_model."), counted("first_stage_model."), counted("cond_stage_model.transformer.")]).toEqual([208, 152, 37]);
    expect(names.length).toBe(208 + 152 + 37 + 12); // + LatentDiffusion's DDPM schedule buffers
    expect(tensors.get("alphas_cumprod")).toMatchObject({ dtype: "F32", shape: [1000] });
    const end = Math.max(...[...tensors.values()].map((t) => t.data_offsets[1]));
    expect(end).toBe(size);
  });

  it("fp16.safetensors and plain.safetensors differ only where they should", async () => {
    const single = (await safetensorsHeader(paths.singleFile)).tensors;
    const fp16 = (await safetensorsHeader(paths.fp16)).tensors;
    expect([...fp16.keys()].sort()).toEqual([...single.keys()].sort());
    for (const [name, entry] of fp16) {
      expect(entry.dtype, name).toBe(name.endsWith("position_ids") ? "I64" : "F16");
      expect(entry.shape, name).toEqual(single.get(name)?.shape);
    }
    expect(paths.plain).not.toBeNull();
    const plain = (await safetensorsHeader(paths.plain ?? "")).tensors;
    expect(plain.get("model.diffusion_model.input_blocks.0.0.weight")?.shape).toEqual([32, 4, 3, 3]);
    expect(plain.size).toBe(single.size);
  });

  it("model.ckpt is torch.save's zip: stored records, 64-byte aligned, correct CRC-32, the state dict pickled", async () => {
    const bytes = await readFile(paths.ckpt);
    const records = zipRecords(bytes);
    const names = records.map((r) => r.name);
    expect(names.slice(0, 2)).toEqual(["archive/data.pkl", "archive/byteorder"]);
    expect(names.at(-1)).toBe("archive/version");
    expect(names.filter((n) => n.startsWith("archive/data/")).length).toBe(409);
    for (const record of records) {
      expect(record.dataOffset % 64, record.name).toBe(0);
      expect(crc32(record.data), record.name).toBe(record.crc);
    }
    expect(records[1].data.toString()).toBe("little");
    const pickle = records[0].data;
    expect([...pickle.subarray(0, 2)]).toEqual([0x80, 2]); // protocol 2
    const text = pickle.toString("latin1");
    for (const needle of ["collections\nOrderedDict\n", "torch._utils\n_rebuild_tensor_v2\n", "torch\nFloatStorage\n", "torch\nLongStorage\n", "state_dict", "global_step"]) {
      expect(text.includes(needle), needle).toBe(true);
    }
    // The first storage is LatentDiffusion's betas: the same bytes as in the safetensors file.
    const { tensors } = await safetensorsHeader(paths.singleFile);
    const single = await readFile(paths.singleFile);
    const headerEnd = 8 + Number(single.readBigUInt64LE(0));
    const [start, stop] = tensors.get("betas")?.data_offsets ?? [0, 0];
    expect(records.find((r) => r.name === "archive/data/0")?.data.equals(single.subarray(headerEnd + start, headerEnd + stop))).toBe(true);
  });

  it("diffusers/ holds the folder layout with diffusers' and transformers' names", async () => {
    const folder = paths.diffusers;
    const read = async (file: string) => JSON.parse(await readFile(path.join(folder, file), "utf8"));
    expect((await read("model_index.json"))._class_name).toBe("StableDiffusionInpaintPipeline");
    expect(await read("unet/config.json")).toMatchObject({ in_channels: 9, block_out_channels: [32, 64], attention_head_dim: 8, cross_attention_dim: 64 });
    expect(await read("vae/config.json")).toMatchObject({ block_out_channels: [32, 32, 64], scaling_factor: 0.18215 });
    expect(await read("text_encoder/config.json")).toMatchObject({ hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 1 });
    expect((await read("scheduler/scheduler_config.json"))._class_name).toBe("PNDMScheduler");
    const unet = await safetensorsHeader(path.join(folder, "unet/diffusion_pytorch_model.safetensors"));
    expect(unet.metadata).toEqual({ format: "pt" });
    expect(unet.tensors.get("conv_in.weight")?.shape).toEqual([32, 9, 3, 3]);
    expect(unet.tensors.size).toBe(208);
    const vae = await safetensorsHeader(path.join(folder, "vae/diffusion_pytorch_model.safetensors"));
    expect(vae.tensors.get("encoder.mid_block.attentions.0.to_q.weight")?.shape).toEqual([64, 64]);
    const text = await safetensorsHeader(path.join(folder, "text_encoder/model.safetensors"));
    expect(text.tensors.get("text_model.encoder.layers.1.self_attn.q_proj.weight")?.shape).toEqual([64, 64]);
    expect(text.tensors.has("text_model.embeddings.position_ids")).toBe(false);
  });

  it("has diffusers' goldens for each module and the end-to-end cases", async () => {
    const modules = modulesFile.parse(JSON.parse(await readFile(path.join(GOLDENS, "modules.json"), "utf8")));
    const check = (tensor: z.infer<typeof goldenTensor>, shape: number[]) => {
      expect(tensor.shape).toEqual(shape);
      const values = float32FromBase64(tensor.data);
      expect(values.length).toBe(shape.reduce((a, b) => a * b, 1));
      expect(values.every(Number.isFinite)).toBe(true);
    };
    expect(modules.text_encoder.input_ids).toHaveLength(77);
    expect(modules.text_encoder.input_ids[0]).toBe(49406);
    check(modules.text_encoder.last_hidden_state, [1, 77, 64]);
    check(modules.unet.sample, [2, 9, 8, 8]);
    check(modules.unet.encoder_hidden_states, [2, 77, 64]);
    expect(modules.unet.cases.map((c) => c.timestep)).toEqual([500, 21]);
    for (const c of modules.unet.cases) check(c.out_sample, [2, 4, 8, 8]);
    check(modules.vae_encoder.sample, [1, 3, 32, 32]);
    check(modules.vae_encoder.latent_parameters, [1, 8, 8, 8]);
    check(modules.vae_decoder.latent_sample, [1, 4, 8, 8]);
    check(modules.vae_decoder.sample, [1, 3, 32, 32]);

    const cases = z
      .object({ diffusers: z.string(), cases: z.array(diffusersCaseSchema) })
      .parse(JSON.parse(await readFile(path.join(GOLDENS, "inpaint-cases/cases.json"), "utf8"))).cases;
    expect(cases.map((c) => c.scheduler)).toEqual(["DDIM", "Euler a"]);
    const present = new Set(await readdir(path.join(GOLDENS, "inpaint-cases")));
    for (const c of cases) for (const file of [c.picture, c.mask, ...c.diffusers_images]) expect(present.has(file), file).toBe(true);
  });
});

describe("checkpoint writers", () => {
  it("pads the safetensors header to 8 bytes and orders tensors as the library does (dtype, then name)", () => {
    const bytes = encodeSafetensors([
      { name: "b", dtype: "F16", shape: [1], values: [1] },
      { name: "a", dtype: "F32", shape: [1], values: [1] },
      { name: "c", dtype: "I64", shape: [1], values: [1] },
      { name: "d", dtype: "BF16", shape: [2], values: [1 + 2 ** -8, 1 + 3 * 2 ** -8] },
    ]);
    const length = Number(Buffer.from(bytes).readBigUInt64LE(0));
    expect(length % 8).toBe(0);
    const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + length)).toString()) as Record<string, HeaderEntry>;
    expect(Object.keys(header)).toEqual(["c", "a", "d", "b"]);
    // bfloat16 rounds to nearest even: 1 + 2^-8 → 1.0 (0x3f80), 1 + 3·2^-8 → 1 + 2^-6 (0x3f82).
    const [start] = header.d.data_offsets;
    const view = Buffer.from(bytes.subarray(8 + length + start));
    expect([view.readUInt16LE(0), view.readUInt16LE(2)]).toEqual([0x3f80, 0x3f82]);
  });
});
