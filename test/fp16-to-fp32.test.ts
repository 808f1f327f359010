import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Mask, RgbImage } from "../nodes/socket-types.ts";
import { fromFloat16Bits, toFloat16Bits } from "../server/engines/onnx/float16.ts";
import { convertFp16ToFp32, isFloat16Model } from "../server/engines/onnx/fp16-to-fp32.ts";
import { convertsFp16, FP32_CACHE_DIR, parseFp16OnCpu, sessionFileFor } from "../server/engines/onnx/fp32-cache.ts";
import type { InpaintRequest } from "../server/engines/onnx/inpaint-pipeline.ts";
import { OnnxEngine } from "../server/engines/onnx/onnx-engine.ts";
import { checkModelLayout } from "../server/models/model-layout.ts";
import { verifyModel } from "../server/models/inspect-models.ts";
import { ensureTinyModels } from "./fixtures/make-tiny-models.ts";

const { onnx } = onnxProto;
const T = onnx.TensorProto.DataType;
const PARTS = ["text_encoder", "unet", "vae_encoder", "vae_decoder"];

let models: Awaited<ReturnType<typeof ensureTinyModels>>;
let workDir: string;
/** A private copy of the fp16 fixture: these tests write its cache and replace its files. */
let fp16Dir: string;

beforeAll(async () => {
  models = await ensureTinyModels();
  workDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-fp16-"));
  fp16Dir = path.join(workDir, "tiny-fp16");
  await cp(models.fp16, fp16Dir, { recursive: true, filter: (source) => !source.includes(FP32_CACHE_DIR) });
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

function request(): InpaintRequest {
  const image: RgbImage = { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3) };
  for (let i = 0; i < 64 * 64; i++) image.data.set([(i * 7) % 256, (i >> 3) % 256, 128], i * 3);
  const mask: Mask = { width: 64, height: 64, data: new Uint8Array(64 * 64) };
  for (let y = 16; y < 40; y++) mask.data.fill(255, y * 64 + 16, y * 64 + 40);
  return { image, mask, prompt: "a photo of a cat", negativePrompt: "", scheduler: "DDIM", steps: 4, guidance: 7.5, strength: 1, seed: 42n, samples: 1, width: 64, height: 64 };
}

function maxDifference(a: RgbImage, b: RgbImage): number {
  let max = 0;
  for (let i = 0; i < a.data.length; i++) max = Math.max(max, Math.abs(a.data[i] - b.data[i]));
  return max;
}

/** Every FLOAT16 mention in a decoded model: initializer types, value types, Cast `to` attributes, attribute tensors. */
function float16Mentions(model: onnxProto.onnx.IModelProto): string[] {
  const found: string[] = [];
  const graph = model.graph!;
  for (const tensor of graph.initializer ?? []) if (tensor.dataType === T.FLOAT16) found.push(`initializer ${tensor.name}`);
  for (const value of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.valueInfo ?? [])]) {
    if (value.type?.tensorType?.elemType === T.FLOAT16) found.push(`value ${value.name}`);
  }
  for (const node of graph.node ?? []) {
    for (const attribute of node.attribute ?? []) {
      if (node.opType === "Cast" && attribute.name === "to" && Number(attribute.i) === T.FLOAT16) found.push(`Cast ${node.name}`);
      if (attribute.t?.dataType === T.FLOAT16) found.push(`attribute tensor of ${node.name}`);
    }
  }
  return found;
}

async function filesUnder(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();
}

describe("fp16 → fp32 conversion of a model file", () => {
  it("widens every weight exactly and leaves no FLOAT16 in the graph (weights in external data and inline)", async () => {
    for (const part of ["unet", "text_encoder"]) {
      const source = path.join(fp16Dir, part, "model.onnx");
      const out = path.join(workDir, `file-${part}`);
      await mkdir(out, { recursive: true });
      expect(await isFloat16Model(source)).toBe(true);
      const result = await convertFp16ToFp32(source, path.join(out, "model.onnx"));
      expect(result.tensors).toBeGreaterThan(0);
      expect(await isFloat16Model(path.join(out, "model.onnx"))).toBe(false);

      const converted = onnx.ModelProto.decode(await readFile(path.join(out, "model.onnx")));
      expect(float16Mentions(converted)).toEqual([]);
      // Each widened weight against the source's fp16 bits, value by value.
      const original = onnx.ModelProto.decode(await readFile(source));
      const data = await readFile(path.join(out, "model.onnx_data"));
      const sourceData = part === "unet" ? await readFile(path.join(fp16Dir, part, "model.onnx_data")) : undefined;
      let compared = 0;
      for (const tensor of original.graph!.initializer!.filter((t) => t.dataType === T.FLOAT16)) {
        const widened = converted.graph!.initializer!.find((t) => t.name === tensor.name)!;
        expect(widened.dataType).toBe(T.FLOAT);
        const bytesOf = (t: onnxProto.onnx.ITensorProto, file: Buffer | undefined): Buffer => {
          if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) return Buffer.from(t.rawData!);
          const fields = Object.fromEntries(t.externalData!.map((e) => [e.key, e.value]));
          return file!.subarray(Number(fields.offset), Number(fields.offset) + Number(fields.length));
        };
        const half = bytesOf(tensor, sourceData);
        const single = bytesOf(widened, data);
        expect(single.length).toBe(half.length * 2);
        for (let i = 0; i < half.length / 2; i++) expect(single.readFloatLE(i * 4)).toBe(fromFloat16Bits(half.readUInt16LE(i * 2)));
        compared++;
      }
      expect(compared).toBe(result.tensors);
    }
  });

  it("converts Constant, ConstantOfShape and int32_data tensors, Cast targets and FLOAT16 inputs and outputs (onnxconverter-common's output)", async () => {
    const half = (values: number[]) => values.map((v) => toFloat16Bits(v));
    const f16 = (name: string, dims: number[]) => ({ name, type: { tensorType: { elemType: T.FLOAT16, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });
    // out = Cast<float16>(Cast<float>(x + c) × fill) — as onnxconverter-common writes a model: constants as int32_data bit patterns.
    const model = onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: "", version: 17 }],
      graph: {
        name: "g",
        input: [f16("x", [4])],
        output: [f16("out", [4])],
        valueInfo: [f16("sum", [4])],
        initializer: [{ name: "shape", dataType: T.INT64, dims: [1], int64Data: [4] }],
        node: [
          { opType: "Constant", output: ["c"], name: "c", attribute: [{ name: "value", type: onnx.AttributeProto.AttributeType.TENSOR, t: { dataType: T.FLOAT16, dims: [4], int32Data: half([0.5, -1.25, 2, 1000]) } }] },
          { opType: "Add", input: ["x", "c"], output: ["sum"], name: "add" },
          { opType: "Cast", input: ["sum"], output: ["sum32"], name: "to32", attribute: [{ name: "to", type: onnx.AttributeProto.AttributeType.INT, i: T.FLOAT }] },
          { opType: "ConstantOfShape", input: ["shape"], output: ["fill"], name: "fill", attribute: [{ name: "value", type: onnx.AttributeProto.AttributeType.TENSOR, t: { dataType: T.FLOAT, dims: [1], floatData: [0.5] } }] },
          { opType: "Mul", input: ["sum32", "fill"], output: ["product"], name: "mul" },
          { opType: "Cast", input: ["product"], output: ["out"], name: "to16", attribute: [{ name: "to", type: onnx.AttributeProto.AttributeType.INT, i: T.FLOAT16 }] },
        ],
      },
    });
    const dir = path.join(workDir, "handmade");
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, "fp16.onnx"), onnx.ModelProto.encode(model).finish());
    expect(await isFloat16Model(path.join(dir, "fp16.onnx"))).toBe(true);
    const result = await convertFp16ToFp32(path.join(dir, "fp16.onnx"), path.join(dir, "fp32.onnx"));
    expect(result).toMatchObject({ tensors: 1, elements: 4, typeAttributes: 1 });
    const converted = onnx.ModelProto.decode(await readFile(path.join(dir, "fp32.onnx")));
    expect(float16Mentions(converted)).toEqual([]);

    const session = await ort.InferenceSession.create(path.join(dir, "fp32.onnx"));
    expect(session.inputMetadata[0]).toMatchObject({ name: "x", type: "float32" });
    const { out } = await session.run({ x: new ort.Tensor("float32", Float32Array.from([1, 2, 3, 4]), [4]) });
    expect(out.type).toBe("float32");
    expect([...(out.data as Float32Array)]).toEqual([0.75, 0.375, 2.5, 502]);
    await session.release();
  });
});

describe("fp16 exports on CPU through the engine", () => {
  let firstLabels: string[];
  let converted: RgbImage;
  let cacheMtime: number;

  it("converts each part once, showing it in the load progress, and loads the fp32 copies", async () => {
    firstLabels = [];
    const engine = new OnnxEngine({ threads: 1, fp16OnCpu: "convert" });
    try {
      const model = await engine.model(fp16Dir, (_loaded, _total, part) => firstLabels.push(part));
      expect(firstLabels.filter((label) => label.startsWith("converting"))).toEqual(PARTS.map((part) => `converting ${part} to fp32 (once)`));
      // The sessions are fp32: the UNet takes a float32 timestep; the export is still reported as fp16.
      expect(model.unet.inputs.get("sample")?.type).toBe("float32");
      expect(model.info).toMatchObject({ floatType: "float16", timestepType: "float32" });
      for (const part of PARTS) {
        expect(await filesUnder(path.join(fp16Dir, FP32_CACHE_DIR, part))).toEqual(["model.onnx", "model.onnx_data", "source.json"]);
      }
      converted = (await engine.inpaint(request(), { modelDir: fp16Dir })).images[0];
      cacheMtime = (await stat(path.join(fp16Dir, FP32_CACHE_DIR, "unet", "model.onnx"))).mtimeMs;
    } finally {
      await engine.release();
    }
  });

  it("computes what the fp16 file computes: each session's output, rounded to fp16, is the fp16 file's within one fp16 step (nearly all bit for bit)", async () => {
    const keep = new OnnxEngine({ threads: 1, fp16OnCpu: "keep" });
    const convert = new OnnxEngine({ threads: 1, fp16OnCpu: "convert" });
    try {
      const [asIs, widened] = [await keep.model(fp16Dir), await convert.model(fp16Dir)];
      // fp16-representable inputs, so both files see the same values.
      let state = 7;
      const values = (count: number, scale = 1) =>
        Float32Array.from({ length: count }, () => fromFloat16Bits(toFloat16Bits(((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 2 * scale)));
      const hidden = asIs.info.hiddenSize;
      const unetFeeds = {
        sample: { kind: "float" as const, data: values(2 * 9 * 8 * 8), dims: [2, 9, 8, 8] },
        timestep: { kind: "float" as const, data: Float32Array.from([981, 981]), dims: [2] },
        encoder_hidden_states: { kind: "float" as const, data: values(2 * 77 * hidden), dims: [2, 77, hidden] },
      };
      const decoderFeeds = { latent_sample: { kind: "float" as const, data: values(4 * 8 * 8, 3), dims: [1, 4, 8, 8] } };
      for (const [name, feeds] of [["unet", unetFeeds], ["vae_decoder", decoderFeeds]] as const) {
        const session = (model: typeof asIs) => (name === "unet" ? model.unet : model.vaeDecoder);
        const expected = Object.values(await session(asIs).run(feeds))[0].data;
        const got = Object.values(await session(widened).run(feeds))[0].data;
        expect(got.length).toBe(expected.length);
        // The graphs are the same fp32 arithmetic, but onnxruntime optimizes the fp16 file at level "extended" and
        // the copy at "all" (other fusions): a sum's last fp32 bit may differ, and flip a rounding to fp16.
        let exact = 0;
        for (let i = 0; i < got.length; i++) {
          const rounded = toFloat16Bits(got[i]);
          const bits = toFloat16Bits(expected[i]);
          if (rounded === bits) exact++;
          else expect(Math.abs(rounded - bits), `${name}[${i}]: ${got[i]} against ${expected[i]}`).toBe(1);
        }
        expect(exact / got.length, name).toBeGreaterThan(0.99);
        // The fp32 copy keeps the outputs' fp32 precision the fp16 file rounds away.
        expect(got.some((value, i) => value !== expected[i]), name).toBe(true);
      }
    } finally {
      await keep.release();
      await convert.release();
    }
  });

  it("gives pixels within 2 grey levels of the fp16 file's and no further from the fp32 export's than the fp16 file's", async () => {
    const keep = new OnnxEngine({ threads: 1, fp16OnCpu: "keep" });
    const fp32 = new OnnxEngine({ threads: 1 });
    try {
      const asIs = (await keep.inpaint(request(), { modelDir: fp16Dir })).images[0];
      const reference = (await fp32.inpaint(request(), { modelDir: models.fp32 })).images[0];
      // The fp16 file rounds every session's output to fp16 (the UNet's at each step); the copy does not (test above).
      expect(maxDifference(converted, asIs)).toBeLessThanOrEqual(2);
      // The fp16 weights are the fp32 export's rounded to fp16 (same seed): 4 grey levels on this tiny random model.
      expect(maxDifference(converted, reference)).toBeLessThanOrEqual(maxDifference(asIs, reference));
    } finally {
      await keep.release();
      await fp32.release();
    }
  });

  it("reuses the cache on the next load, and converts again only the part whose source changed", async () => {
    const labels: string[] = [];
    const engine = new OnnxEngine({ threads: 1, fp16OnCpu: "convert" });
    await engine.model(fp16Dir, (_l, _t, part) => labels.push(part));
    await engine.release();
    expect(labels.filter((label) => label.startsWith("converting"))).toEqual([]);
    expect((await stat(path.join(fp16Dir, FP32_CACHE_DIR, "unet", "model.onnx"))).mtimeMs).toBe(cacheMtime);

    // A replaced UNet (here: its weights file touched, as a copy over it would) is converted again.
    const later = new Date(Date.now() + 5000);
    await utimes(path.join(fp16Dir, "unet", "model.onnx_data"), later, later);
    const again: string[] = [];
    const reloaded = new OnnxEngine({ threads: 1, fp16OnCpu: "convert" });
    await reloaded.model(fp16Dir, (_l, _t, part) => again.push(part));
    await reloaded.release();
    expect(again.filter((label) => label.startsWith("converting"))).toEqual(["converting unet to fp32 (once)"]);
    // No temporary folder is left beside the cache.
    expect((await readdir(path.join(fp16Dir, FP32_CACHE_DIR))).sort()).toEqual([...PARTS].sort());
  });

  it("opens the fp16 files as they are with MASKFLOW_FP16_ON_CPU=keep, and refuses other values naming the variable", async () => {
    const dir = path.join(workDir, "kept");
    await cp(models.fp16, dir, { recursive: true, filter: (source) => !source.includes(FP32_CACHE_DIR) });
    const saved = process.env.MASKFLOW_FP16_ON_CPU;
    process.env.MASKFLOW_FP16_ON_CPU = "keep";
    try {
      const engine = new OnnxEngine({ threads: 1 });
      expect(engine.fp16OnCpu).toBe("keep");
      const labels: string[] = [];
      const model = await engine.model(dir, (_l, _t, part) => labels.push(part));
      expect(model.unet.inputs.get("sample")?.type).toBe("float16");
      expect(model.info).toMatchObject({ floatType: "float16", timestepType: "float16" });
      await engine.release();
      expect(labels.some((label) => label.startsWith("converting"))).toBe(false);
      expect(await readdir(dir)).not.toContain(FP32_CACHE_DIR);
      process.env.MASKFLOW_FP16_ON_CPU = "sometimes";
      expect(() => new OnnxEngine({ threads: 1 })).toThrow('MASKFLOW_FP16_ON_CPU must be "convert" or "keep", got "sometimes"');
    } finally {
      if (saved === undefined) delete process.env.MASKFLOW_FP16_ON_CPU;
      else process.env.MASKFLOW_FP16_ON_CPU = saved;
    }
    expect(parseFp16OnCpu(undefined)).toBe("convert");
  });

  it("keeps fp16 on CUDA and fp32 exports as they are (the decision, without a GPU)", async () => {
    expect(convertsFp16("cuda", "convert")).toBe(false);
    expect(convertsFp16("cpu", "convert")).toBe(true);
    expect(convertsFp16("cpu", "keep")).toBe(false);
    const dir = path.join(workDir, "cuda");
    await cp(models.fp16, dir, { recursive: true, filter: (source) => !source.includes(FP32_CACHE_DIR) });
    const warn = (message: string) => expect.fail(message);
    expect(await sessionFileFor(dir, "unet", { device: "cuda", fp16OnCpu: "convert", warn })).toEqual({ file: path.join(dir, "unet", "model.onnx"), float16: true, convertedFromFloat16: false });
    expect(await sessionFileFor(models.fp32, "unet", { device: "cpu", fp16OnCpu: "convert", warn })).toEqual({ file: path.join(models.fp32, "unet", "model.onnx"), float16: false, convertedFromFloat16: false });
    expect(await readdir(dir)).not.toContain(FP32_CACHE_DIR);
  });

  it("gives two loads of the same folder at once one good copy (the second rename finds the first's)", async () => {
    const dir = path.join(workDir, "racing");
    await cp(models.fp16, dir, { recursive: true, filter: (source) => !source.includes(FP32_CACHE_DIR) });
    const lines: string[] = [];
    const options = { device: "cpu" as const, fp16OnCpu: "convert" as const, warn: (message: string) => lines.push(message) };
    const [a, b] = await Promise.all([sessionFileFor(dir, "unet", options), sessionFileFor(dir, "unet", options)]);
    expect(lines).toEqual([]);
    expect(a).toEqual({ file: path.join(dir, FP32_CACHE_DIR, "unet", "model.onnx"), float16: false, convertedFromFloat16: true });
    expect(b).toEqual(a);
    expect(await readdir(path.join(dir, FP32_CACHE_DIR))).toEqual(["unet"]);
    const session = await ort.InferenceSession.create(a.file);
    expect(session.inputMetadata.find((value) => value.name === "sample")).toMatchObject({ type: "float32" });
    await session.release();
  });

  it("falls back to the fp16 file with a log line when the disk has no room for the copy", async () => {
    const dir = path.join(workDir, "full-disk");
    await cp(models.fp16, dir, { recursive: true, filter: (source) => !source.includes(FP32_CACHE_DIR) });
    const lines: string[] = [];
    const choice = await sessionFileFor(dir, "unet", {
      device: "cpu",
      fp16OnCpu: "convert",
      warn: (message) => lines.push(message),
      statfs: async () => ({ bavail: 10, bsize: 4096 }),
    });
    expect(choice).toEqual({ file: path.join(dir, "unet", "model.onnx"), float16: true, convertedFromFloat16: false });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/not converted to fp32 for the CPU \(it needs about .* free, 41\.0 KB is free at .*\); loading the fp16 file as it is/);
    expect(lines[0]).toContain("MASKFLOW_FP16_ON_CPU=keep");
    expect(await readdir(dir)).not.toContain(FP32_CACHE_DIR);
  });

  it("leaves `models verify` and the layout check undisturbed by the cache folder", async () => {
    expect(await readdir(fp16Dir)).toContain(FP32_CACHE_DIR);
    expect(await checkModelLayout(fp16Dir)).toEqual([]);
    const verification = await verifyModel(fp16Dir);
    expect(verification.problems).toEqual([]);
    expect(verification.sessionsOpened).toBe(true);
  });
});
