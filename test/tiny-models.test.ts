import { cp, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import onnxProto from "onnx-proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureTinyModels, writeTinyModel, type TinyModelVariant } from "./fixtures/make-tiny-models.ts";
import { fromFloat16Bits as float16BitsToFloat32, toFloat16Bits as float32ToFloat16Bits } from "../server/engines/onnx/float16.ts";

const { onnx } = onnxProto;

const HIDDEN = 32;
const SEQUENCE = 77;

interface VariantExpectation {
  readonly variant: TinyModelVariant;
  readonly float: "float32" | "float16";
  readonly unetChannels: number;
  readonly timestep: "int64" | "float32" | "float16";
  readonly externalFile: string;
}

const VARIANTS: readonly VariantExpectation[] = [
  { variant: "fp32", float: "float32", unetChannels: 9, timestep: "int64", externalFile: "model.onnx_data" },
  { variant: "fp16", float: "float16", unetChannels: 9, timestep: "float16", externalFile: "model.onnx_data" },
  { variant: "legacy", float: "float32", unetChannels: 4, timestep: "float32", externalFile: "weights.pb" },
];

let workDir = "";
const folders = new Map<TinyModelVariant, string>();

beforeAll(async () => {
  workDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-tiny-models-"));
  for (const { variant } of VARIANTS) {
    const dir = path.join(workDir, variant);
    await writeTinyModel(dir, { variant });
    folders.set(variant, dir);
  }
});

afterAll(async () => {
  if (workDir !== "") await rm(workDir, { recursive: true, force: true });
});

function folderOf(variant: TinyModelVariant): string {
  const dir = folders.get(variant);
  if (dir === undefined) throw new Error(`no folder for ${variant}`);
  return dir;
}

async function session(variant: TinyModelVariant, component: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(path.join(folderOf(variant), component, "model.onnx"));
}

function describeValues(metadata: readonly ort.InferenceSession.ValueMetadata[]): Record<string, string> {
  return Object.fromEntries(metadata.map((value) => [value.name, value.isTensor ? value.type : "non-tensor"]));
}

function seededValues(count: number, seed: number): Float32Array {
  const values = new Float32Array(count);
  let state = seed;
  for (let i = 0; i < count; i++) {
    state = (state * 1103515245 + 12345) % 2147483648;
    values[i] = (state / 2147483648) * 2 - 1;
  }
  return values;
}

function floatTensor(type: "float32" | "float16", values: Float32Array, dims: readonly number[]): ort.Tensor {
  if (type === "float32") return new ort.Tensor("float32", values, dims);
  return new ort.Tensor("float16", Uint16Array.from(values, (v) => float32ToFloat16Bits(v)), dims);
}

function timestepTensor(type: VariantExpectation["timestep"], value: number): ort.Tensor {
  if (type === "int64") return new ort.Tensor("int64", BigInt64Array.from([BigInt(value)]), [1]);
  return floatTensor(type, Float32Array.from([value]), [1]);
}

/** Output values as plain numbers whatever the tensor's float type. */
function numbers(tensor: ort.Tensor): Float64Array {
  if (tensor.type === "float16") return Float64Array.from(tensor.data as Uint16Array, float16BitsToFloat32);
  return Float64Array.from(tensor.data as Float32Array);
}

function maxAbsDifference(a: Float64Array, b: Float64Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

function promptIds(tokens: readonly number[]): Int32Array {
  const ids = new Int32Array(SEQUENCE).fill(49407);
  ids.set([49406, ...tokens, 49407].slice(0, SEQUENCE));
  return ids;
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
    .sort();
}

function decodeModel(bytes: Uint8Array): onnxProto.onnx.ModelProto {
  return onnx.ModelProto.decode(bytes);
}

describe("float32 → float16 conversion", () => {
  it("rounds to nearest even and handles the edges", () => {
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00); // halfway to the next step: rounds up to Inf
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie, even mantissa kept
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie, rounds up to even
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0x0000); // tie with zero goes to even (zero)
    expect(float32ToFloat16Bits(3 * 2 ** -26)).toBe(0x0001);
    expect(float32ToFloat16Bits(-0)).toBe(0x8000);
    expect(float32ToFloat16Bits(Number.NaN) & 0x7c00).toBe(0x7c00);
    expect(float32ToFloat16Bits(Number.NaN) & 0x3ff).not.toBe(0);
    for (const value of [0.1, -3.14159, 1000.5, 6.1e-5, 1e-7]) {
      const back = float16BitsToFloat32(float32ToFloat16Bits(value));
      expect(Math.abs(back - value)).toBeLessThanOrEqual(Math.max(Math.abs(value) * 2 ** -11, 2 ** -25));
    }
  });
});

describe.each(VARIANTS)("tiny model, $variant variant", (expected) => {
  it("has the export's folder layout", async () => {
    const files = await filesUnder(folderOf(expected.variant));
    for (const file of [
      "model_index.json",
      "scheduler/scheduler_config.json",
      "text_encoder/model.onnx",
      "tokenizer/merges.txt",
      "tokenizer/special_tokens_map.json",
      "tokenizer/tokenizer_config.json",
      "tokenizer/vocab.json",
      "unet/model.onnx",
      `unet/${expected.externalFile}`,
      "vae_decoder/model.onnx",
      "vae_encoder/model.onnx",
    ]) {
      expect(files).toContain(file);
    }
    const scheduler = JSON.parse(await readFile(path.join(folderOf(expected.variant), "scheduler/scheduler_config.json"), "utf8"));
    expect(scheduler).toMatchObject({ _class_name: "PNDMScheduler", num_train_timesteps: 1000, beta_schedule: "scaled_linear", steps_offset: 1, skip_prk_steps: true });
    const tokenizer = JSON.parse(await readFile(path.join(folderOf(expected.variant), "tokenizer/tokenizer_config.json"), "utf8"));
    expect(tokenizer).toMatchObject({ model_max_length: 77, pad_token: "<|endoftext|>" });
  });

  it("declares the export's input and output names and dtypes", async () => {
    const text = await session(expected.variant, "text_encoder");
    expect(describeValues(text.inputMetadata)).toEqual({ input_ids: "int32" });
    expect(describeValues(text.outputMetadata)).toEqual({ last_hidden_state: expected.float, pooler_output: expected.float });
    const unet = await session(expected.variant, "unet");
    expect(describeValues(unet.inputMetadata)).toEqual({ sample: expected.float, timestep: expected.timestep, encoder_hidden_states: expected.float });
    expect(describeValues(unet.outputMetadata)).toEqual({ out_sample: expected.float });
    const hiddenDim = unet.inputMetadata.find((value) => value.name === "encoder_hidden_states");
    expect(hiddenDim?.isTensor === true ? hiddenDim.shape[2] : undefined).toBe(HIDDEN);
    const encoder = await session(expected.variant, "vae_encoder");
    expect(describeValues(encoder.inputMetadata)).toEqual({ sample: expected.float });
    expect(describeValues(encoder.outputMetadata)).toEqual({ latent_sample: expected.float });
    const decoder = await session(expected.variant, "vae_decoder");
    expect(describeValues(decoder.inputMetadata)).toEqual({ latent_sample: expected.float });
    expect(describeValues(decoder.outputMetadata)).toEqual({ sample: expected.float });
  });

  it("text encoder: [2, 77] ids → [2, 77, H] and [2, H], finite, dependent on the ids", async () => {
    const text = await session(expected.variant, "text_encoder");
    const ids = new Int32Array(2 * SEQUENCE);
    ids.set(promptIds([320, 1125, 539, 320, 2368]), 0); // "a photo of a cat"
    ids.set(promptIds([320, 1125, 539, 320, 1929]), SEQUENCE); // one token differs
    const result = await text.run({ input_ids: new ort.Tensor("int32", ids, [2, SEQUENCE]) });
    expect(result.last_hidden_state.dims).toEqual([2, SEQUENCE, HIDDEN]);
    expect(result.pooler_output.dims).toEqual([2, HIDDEN]);
    const hidden = numbers(result.last_hidden_state);
    expect(hidden.every(Number.isFinite)).toBe(true);
    const perPrompt = SEQUENCE * HIDDEN;
    expect(maxAbsDifference(hidden.subarray(0, perPrompt), hidden.subarray(perPrompt))).toBeGreaterThan(1e-3);
    // Every id up to EOS is a valid input (the table lookup reduces ids modulo its size).
    const extremes = new Int32Array(SEQUENCE).map((_, i) => (i * 997) % 49408);
    const extremeResult = await text.run({ input_ids: new ort.Tensor("int32", extremes, [1, SEQUENCE]) });
    expect(numbers(extremeResult.last_hidden_state).every(Number.isFinite)).toBe(true);
  });

  it.each([64, 96])("unet: batch 2 at %i-pixel square latents → [2, 4, h, w], finite, dependent on every input", async (size) => {
    const unet = await session(expected.variant, "unet");
    const sampleValues = seededValues(2 * expected.unetChannels * size * size, 1);
    const textValues = seededValues(2 * SEQUENCE * HIDDEN, 2);
    const run = async (sample: Float32Array, timestep: number, text: Float32Array) =>
      numbers(
        (
          await unet.run({
            sample: floatTensor(expected.float, sample, [2, expected.unetChannels, size, size]),
            timestep: timestepTensor(expected.timestep, timestep),
            encoder_hidden_states: floatTensor(expected.float, text, [2, SEQUENCE, HIDDEN]),
          })
        ).out_sample,
      );
    const base = await run(sampleValues, 981, textValues);
    expect(base.length).toBe(2 * 4 * size * size);
    expect(base.every(Number.isFinite)).toBe(true);
    expect(maxAbsDifference(base, await run(sampleValues, 1, textValues))).toBeGreaterThan(1e-3);
    expect(maxAbsDifference(base, await run(sampleValues, 981, seededValues(textValues.length, 3)))).toBeGreaterThan(1e-3);
    expect(maxAbsDifference(base, await run(seededValues(sampleValues.length, 4), 981, textValues))).toBeGreaterThan(1e-3);
    const shaped = await unet.run({
      sample: floatTensor(expected.float, sampleValues, [2, expected.unetChannels, size, size]),
      timestep: timestepTensor(expected.timestep, 981),
      encoder_hidden_states: floatTensor(expected.float, textValues, [2, SEQUENCE, HIDDEN]),
    });
    expect(shaped.out_sample.dims).toEqual([2, 4, size, size]);
  });

  it.each([512, 768])("vae: batch 2 %i-pixel square image → latents → image", async (size) => {
    const encoder = await session(expected.variant, "vae_encoder");
    const image = seededValues(2 * 3 * size * size, 5);
    const encoded = await encoder.run({ sample: floatTensor(expected.float, image, [2, 3, size, size]) });
    expect(encoded.latent_sample.dims).toEqual([2, 4, size / 8, size / 8]);
    expect(numbers(encoded.latent_sample).every(Number.isFinite)).toBe(true);

    const decoder = await session(expected.variant, "vae_decoder");
    const latents = seededValues(2 * 4 * (size / 8) ** 2, 6).map((v) => v * 5);
    const decoded = await decoder.run({ latent_sample: floatTensor(expected.float, latents, [2, 4, size / 8, size / 8]) });
    expect(decoded.sample.dims).toEqual([2, 3, size, size]);
    const pixels = numbers(decoded.sample);
    expect(pixels.every((v) => Number.isFinite(v) && v >= -1 && v <= 1)).toBe(true);
  });

  it("keeps the UNet's large weights in the external data file, and needs it to load", async () => {
    const unetDir = path.join(folderOf(expected.variant), "unet");
    const model = decodeModel(await readFile(path.join(unetDir, "model.onnx")));
    const external = model.graph?.initializer?.filter((tensor) => tensor.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) ?? [];
    expect(external.length).toBeGreaterThan(0);
    const dataFile = await stat(path.join(unetDir, expected.externalFile));
    let covered = 0;
    for (const tensor of external) {
      const fields = Object.fromEntries((tensor.externalData ?? []).map((entry) => [entry.key, entry.value]));
      expect(fields.location).toBe(expected.externalFile);
      expect(Number(fields.offset) + Number(fields.length)).toBeLessThanOrEqual(dataFile.size);
      expect(tensor.rawData?.length ?? 0).toBe(0);
      covered += Number(fields.length);
    }
    expect(covered).toBe(dataFile.size);

    const copy = path.join(workDir, `${expected.variant}-without-external`);
    await cp(unetDir, copy, { recursive: true });
    await rm(path.join(copy, expected.externalFile));
    // Fatal-only logging: the failures below are expected, their error logs are noise.
    const quiet: ort.InferenceSession.SessionOptions = { logSeverityLevel: 4 };
    await expect(ort.InferenceSession.create(path.join(copy, "model.onnx"), quiet)).rejects.toThrow();
    // A corrupt (truncated) data file is refused too, so the loader really reads it.
    await writeFile(path.join(copy, expected.externalFile), new Uint8Array(8));
    await expect(ort.InferenceSession.create(path.join(copy, "model.onnx"), quiet)).rejects.toThrow();
  });

  it("stores weights in the variant's precision", async () => {
    const dir = folderOf(expected.variant);
    const floatType = expected.float === "float16" ? onnx.TensorProto.DataType.FLOAT16 : onnx.TensorProto.DataType.FLOAT;
    for (const component of ["text_encoder", "unet", "vae_encoder", "vae_decoder"]) {
      const model = decodeModel(await readFile(path.join(dir, component, "model.onnx")));
      const floatWeights = (model.graph?.initializer ?? []).filter(
        (tensor) => tensor.dataType === onnx.TensorProto.DataType.FLOAT || tensor.dataType === onnx.TensorProto.DataType.FLOAT16,
      );
      expect(floatWeights.length).toBeGreaterThan(0);
      for (const tensor of floatWeights) expect(tensor.dataType, `${component}/${tensor.name}`).toBe(floatType);
    }
  });

  it("stays small: under 2 MB without the copied vocab and merges", async () => {
    const dir = folderOf(expected.variant);
    let total = 0;
    for (const file of await filesUnder(dir)) {
      if (file === path.join("tokenizer", "vocab.json") || file === path.join("tokenizer", "merges.txt")) continue;
      total += (await stat(path.join(dir, file))).size;
    }
    expect(total).toBeLessThan(2 * 1024 * 1024);
  });
});

describe("generator options", () => {
  it("writes byte-identical folders for the same options", async () => {
    const first = path.join(workDir, "determinism-a");
    const second = path.join(workDir, "determinism-b");
    await writeTinyModel(first, { variant: "fp16", seed: 99 });
    await writeTinyModel(second, { variant: "fp16", seed: 99 });
    const files = await filesUnder(first);
    expect(await filesUnder(second)).toEqual(files);
    for (const file of files) {
      const [a, b] = await Promise.all([readFile(path.join(first, file)), readFile(path.join(second, file))]);
      expect(Buffer.compare(a, b), file).toBe(0);
    }
    // A different seed changes the weights.
    const third = path.join(workDir, "determinism-c");
    await writeTinyModel(third, { variant: "fp16", seed: 100 });
    const [unetA, unetC] = await Promise.all([readFile(path.join(first, "unet/model.onnx_data")), readFile(path.join(third, "unet/model.onnx_data"))]);
    expect(Buffer.compare(unetA, unetC)).not.toBe(0);
  });

  it("can name the VAE encoder output latent_parameters (mean ‖ logvar)", async () => {
    const dir = path.join(workDir, "latent-parameters");
    await writeTinyModel(dir, { vaeOutput: "latent_parameters" });
    const encoder = await ort.InferenceSession.create(path.join(dir, "vae_encoder", "model.onnx"));
    expect(encoder.outputNames).toEqual(["latent_parameters"]);
    const result = await encoder.run({ sample: new ort.Tensor("float32", seededValues(2 * 3 * 512 * 512, 7), [2, 3, 512, 512]) });
    expect(result.latent_parameters.dims).toEqual([2, 8, 64, 64]);
  });

  it("follows the hidden size into the text encoder and the UNet", async () => {
    const dir = path.join(workDir, "hidden-48");
    await writeTinyModel(dir, { hiddenSize: 48, timestep: "float" });
    const text = await ort.InferenceSession.create(path.join(dir, "text_encoder", "model.onnx"));
    const result = await text.run({ input_ids: new ort.Tensor("int32", promptIds([320]), [1, SEQUENCE]) });
    expect(result.last_hidden_state.dims).toEqual([1, SEQUENCE, 48]);
    const unet = await ort.InferenceSession.create(path.join(dir, "unet", "model.onnx"));
    const out = await unet.run({
      sample: new ort.Tensor("float32", seededValues(9 * 8 * 8, 8), [1, 9, 8, 8]),
      timestep: new ort.Tensor("float32", Float32Array.from([500]), [1]),
      encoder_hidden_states: result.last_hidden_state,
    });
    expect(out.out_sample.dims).toEqual([1, 4, 8, 8]);
    const config = JSON.parse(await readFile(path.join(dir, "unet", "config.json"), "utf8"));
    expect(config).toMatchObject({ in_channels: 9, cross_attention_dim: 48 });
  });

  it("ensureTinyModels generates once, survives concurrent callers, and regenerates a stale folder", async () => {
    const root = path.join(workDir, "ensure");
    const [first, second] = await Promise.all([ensureTinyModels(root), ensureTinyModels(root)]);
    expect(second).toEqual(first);
    for (const dir of [first.fp32, first.fp16, first.legacy]) {
      await expect(stat(path.join(dir, "unet", "model.onnx"))).resolves.toBeDefined();
    }
    expect((await readdir(root)).sort()).toEqual(["tiny-sd-inpaint", "tiny-sd-inpaint-fp16", "tiny-sd-legacy"]);

    const unetFile = path.join(first.fp32, "unet", "model.onnx");
    const before = (await stat(unetFile)).mtimeMs;
    await ensureTinyModels(root);
    expect((await stat(unetFile)).mtimeMs).toBe(before);

    // An older generator's stamp makes it rebuild the folder.
    await writeFile(path.join(first.fp32, ".maskflow-fixture.json"), "{}\n");
    await rm(unetFile);
    await ensureTinyModels(root);
    await expect(stat(unetFile)).resolves.toBeDefined();
  });
});
