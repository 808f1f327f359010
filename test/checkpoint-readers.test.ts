// The checkpoint readers as a user meets them: a .safetensors or torch .ckpt opens with the right tensors and exact
// numbers, anything damaged or hostile is refused with one line naming the file and what is wrong, and a pickle
// that would run a command is refused without running it.
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, readlink, rm, truncate, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { deflateRawSync, crc32 } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromFloat16Bits, toFloat16Bits } from "../server/engines/onnx/float16.ts";
import { openCkpt } from "../server/models/checkpoint/ckpt-file.ts";
import { CheckpointError, type CheckpointFile } from "../server/models/checkpoint/checkpoint-tensor.ts";
import { openCheckpoint } from "../server/models/checkpoint/open-checkpoint.ts";
import { openSafetensors } from "../server/models/checkpoint/safetensors-file.ts";
import { decodeToFloat32 } from "../server/models/checkpoint/tensor-bytes.ts";
import { encodeTorchZip, writeSafetensors, writeTorchCkpt, type FixtureTensor } from "./fixtures/checkpoint-writers.ts";

const FIXTURES = path.join(import.meta.dirname, "fixtures", "checkpoint-readers");

let dir: string;
let fileCount = 0;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-checkpoint-readers-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeTemp(bytes: Uint8Array, extension = ".safetensors"): Promise<string> {
  const file = path.join(dir, `file-${++fileCount}${extension}`);
  await writeFile(file, bytes);
  return file;
}

/** Opens, reads every tensor, closes. */
async function readAll(checkpoint: CheckpointFile): Promise<Map<string, Float32Array>> {
  const values = new Map<string, Float32Array>();
  try {
    for (const [name, tensor] of checkpoint.tensors) values.set(name, await tensor.readFloat32());
  } finally {
    await checkpoint.close();
  }
  return values;
}

/** The refusal a user sees: a CheckpointError, one line, starting with the file's path. */
async function refusal(file: string, opening: Promise<unknown>): Promise<string> {
  const error = await opening.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(CheckpointError);
  const message = (error as CheckpointError).message;
  expect(message.startsWith(`${file}: `)).toBe(true);
  expect(message).not.toContain("\n");
  return message;
}

function bitsEqual(actual: Float32Array, expected: ArrayLike<number>): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (Number.isNaN(expected[i])) expect(Number.isNaN(actual[i]), `element ${i}`).toBe(true);
    else expect(Object.is(actual[i], Math.fround(expected[i])), `element ${i}: ${actual[i]} vs ${expected[i]}`).toBe(true);
  }
}

const F16_SPECIALS = [1, -2.5, 65504, -65504, 2 ** -24, 3 * 2 ** -24, 2 ** -14 - 2 ** -24, 2 ** -14, Infinity, -Infinity, NaN, -0, 0];
const BF16_EXACT = [1, -0.5, 3.140625, 2 ** -130, -(2 ** 100), Infinity, -Infinity, NaN, -0];

// ---------------------------------------------------------------------------------------------------------------
// safetensors

/** A safetensors file from a header object (or raw header text) and data bytes; `length` overrides the header length. */
function rawSafetensors(header: unknown, data: Uint8Array = new Uint8Array(0), length?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const bytes = new Uint8Array(8 + json.length + data.length);
  new DataView(bytes.buffer).setBigUint64(0, length ?? BigInt(json.length), true);
  bytes.set(json, 8);
  bytes.set(data, 8 + json.length);
  return bytes;
}

function littleEndian(values: ArrayLike<number>, kind: "F64" | "I32" | "I16" | "I8" | "U8"): Uint8Array {
  const Type = { F64: Float64Array, I32: Int32Array, I16: Int16Array, I8: Int8Array, U8: Uint8Array }[kind];
  return new Uint8Array(Type.from(values).buffer);
}

describe("safetensors", () => {
  it("reads F32, F16, BF16 and I64 tensors exactly, with the metadata", async () => {
    const file = path.join(dir, "round-trip.safetensors");
    const positionIds = Array.from({ length: 77 }, (_, i) => i);
    const tensors: FixtureTensor[] = [
      { name: "unet.conv.weight", dtype: "F32", shape: [2, 3], values: [0.1, -1e-30, 3.5e38, 1e-45, -0, 7] },
      { name: "half", dtype: "F16", shape: [F16_SPECIALS.length], values: F16_SPECIALS },
      { name: "brain", dtype: "BF16", shape: [3, 3], values: BF16_EXACT },
      { name: "cond_stage_model.transformer.text_model.embeddings.position_ids", dtype: "I64", shape: [1, 77], values: positionIds },
      { name: "big_ints", dtype: "I64", shape: [3], values: [-5, 2 ** 40, -(2 ** 50)] },
    ];
    await writeSafetensors(file, tensors, { format: "pt", "modelspec.title": "tiny" });
    const checkpoint = await openSafetensors(file);
    expect(checkpoint.format).toBe("safetensors");
    expect(checkpoint.path).toBe(file);
    expect(checkpoint.metadata).toEqual({ format: "pt", "modelspec.title": "tiny" });
    expect([...checkpoint.tensors.keys()].sort()).toEqual(tensors.map((tensor) => tensor.name).sort());
    expect(checkpoint.tensors.get("brain")).toMatchObject({ dtype: "BF16", shape: [3, 3] });
    const values = await readAll(checkpoint);
    for (const tensor of tensors) bitsEqual(values.get(tensor.name) as Float32Array, tensor.values);
  });

  it("converts every float16 bit pattern like the existing converter, subnormals, infinities and NaN included", () => {
    const patterns = new Uint16Array(65536).map((_, i) => i);
    const floats = decodeToFloat32("F16", new Uint8Array(patterns.buffer));
    for (let bits = 0; bits < 65536; bits++) {
      const expected = fromFloat16Bits(bits);
      if (Number.isNaN(expected)) expect(Number.isNaN(floats[bits])).toBe(true);
      else if (!Object.is(floats[bits], expected)) expect.fail(`0x${bits.toString(16)}: ${floats[bits]} vs ${expected}`);
    }
  });

  it("reads F64 (rounded), I32, I16, I8, U8 and BOOL as float32", async () => {
    const columns = {
      F64: [0.1, -1e300, 1e-50, Math.PI],
      I32: [-(2 ** 31), 7, 2 ** 31 - 1],
      I16: [-32768, 12, 32767],
      I8: [-128, 3, 127],
      U8: [0, 200, 255],
    } as const;
    const header: Record<string, unknown> = {};
    const blobs: Uint8Array[] = [];
    let offset = 0;
    for (const [dtype, values] of Object.entries(columns) as [keyof typeof columns, readonly number[]][]) {
      const bytes = littleEndian(values, dtype);
      header[dtype.toLowerCase()] = { dtype, shape: [values.length], data_offsets: [offset, offset + bytes.length] };
      blobs.push(bytes);
      offset += bytes.length;
    }
    header.mask = { dtype: "BOOL", shape: [4], data_offsets: [offset, offset + 4] };
    blobs.push(Uint8Array.of(1, 0, 1, 1));
    header.nothing = { dtype: "F32", shape: [0, 4], data_offsets: [offset + 4, offset + 4] };
    const data = new Uint8Array(offset + 4);
    let at = 0;
    for (const blob of blobs) {
      data.set(blob, at);
      at += blob.length;
    }
    const values = await readAll(await openSafetensors(await writeTemp(rawSafetensors(header, data))));
    for (const [dtype, expected] of Object.entries(columns)) bitsEqual(values.get(dtype.toLowerCase()) as Float32Array, expected);
    expect([...(values.get("mask") as Float32Array)]).toEqual([1, 0, 1, 1]);
    expect(values.get("nothing")).toHaveLength(0);
  });

  it("reads a tensor's bytes when it is read, not when the file is opened", async () => {
    const file = path.join(dir, "lazy.safetensors");
    await writeSafetensors(file, [{ name: "w", dtype: "F32", shape: [2], values: [1, 2] }]);
    const checkpoint = await openSafetensors(file);
    const bytes = await readFile(file);
    new DataView(bytes.buffer, bytes.byteOffset).setFloat32(bytes.length - 4, 42, true);
    await writeFile(file, bytes);
    expect([...(await (checkpoint.tensors.get("w") as { readFloat32(): Promise<Float32Array> }).readFloat32())]).toEqual([1, 42]);
    await checkpoint.close();
    const message = await refusal(file, (checkpoint.tensors.get("w") as { readFloat32(): Promise<Float32Array> }).readFloat32());
    expect(message).toContain('tensor "w" was read after the file was closed');
  });

  const f32 = (count: number, begin = 0) => ({ dtype: "F32", shape: [count], data_offsets: [begin, begin + 4 * count] });
  const refusals: Array<[string, () => Uint8Array, RegExp]> = [
    ["a file shorter than 8 bytes", () => Uint8Array.of(1, 2, 3), /3 bytes is too short for a safetensors file/],
    ["a huge header length", () => rawSafetensors({}, undefined, 0xffffffffffffffffn), /header length 18446744073709551615 bytes is over safetensors' limit of 100000000 bytes/],
    ["a header length past the end", () => rawSafetensors("{}", undefined, 5000n), /truncated: the header length says 5000 bytes of header but the file has only 2/],
    ["a header that is not JSON", () => rawSafetensors("{not json"), /the header is not JSON \(/],
    ["a header that is not an object", () => rawSafetensors([1, 2]), /the header is \[1,2\], not a JSON object/],
    [
      "an unknown dtype",
      () => rawSafetensors({ w: { dtype: "F8_E4M3", shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)),
      /tensor "w" has dtype "F8_E4M3"; the dtypes read are F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL/,
    ],
    ["a negative dimension", () => rawSafetensors({ w: { ...f32(1), shape: [2, -1] } }, new Uint8Array(4)), /tensor "w" has shape \[2,-1\], not a list of non-negative integers/],
    ["a fractional dimension", () => rawSafetensors({ w: { ...f32(1), shape: [0.5] } }, new Uint8Array(4)), /has shape \[0.5\], not a list of non-negative integers/],
    ["a shape that is not a list", () => rawSafetensors({ w: { ...f32(1), shape: "1" } }, new Uint8Array(4)), /has shape "1", not a list/],
    ["data_offsets backwards", () => rawSafetensors({ w: { ...f32(1), data_offsets: [4, 0] } }, new Uint8Array(4)), /tensor "w" has data_offsets \[4,0\], not two non-negative integers \[begin, end\] with begin <= end/],
    ["data_offsets of one number", () => rawSafetensors({ w: { ...f32(1), data_offsets: [4] } }, new Uint8Array(4)), /has data_offsets \[4\], not two/],
    ["data_offsets as text", () => rawSafetensors({ w: { ...f32(1), data_offsets: ["0", "4"] } }, new Uint8Array(4)), /has data_offsets \["0","4"\], not two/],
    [
      "a tensor past the end of the file",
      () => rawSafetensors({ a: f32(1), w: f32(4, 4) }, new Uint8Array(8)),
      /truncated: the header needs \d+ bytes \(tensor "w" ends at data offset 20\) but the file has \d+/,
    ],
    [
      "a byte length that does not match the shape",
      () => rawSafetensors({ "model.w": { dtype: "F16", shape: [2, 3], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /tensor "model.w" \(F16, shape \[2, 3\]\) needs 12 bytes but its data_offsets span 8/,
    ],
    [
      "overlapping tensors",
      () => rawSafetensors({ first: f32(4, 0), second: f32(2, 8) }, new Uint8Array(16)),
      /tensors "first" \[0, 16\) and "second" \[8, 16\) overlap/,
    ],
    ["metadata that is not strings", () => rawSafetensors({ __metadata__: { steps: 5 } }), /"__metadata__" entry "steps" is 5, not a string/],
  ];
  it.each(refusals)("refuses %s, saying what is wrong", async (_, bytes, expected) => {
    const file = await writeTemp(bytes());
    expect(await refusal(file, openSafetensors(file))).toMatch(expected);
  });

  it("refuses a truncated download, saying how many bytes the header needs and the file has", async () => {
    const file = path.join(dir, "truncated.safetensors");
    await writeSafetensors(file, [
      { name: "a", dtype: "F32", shape: [4], values: [1, 2, 3, 4] },
      { name: "b", dtype: "F32", shape: [4], values: [5, 6, 7, 8] },
    ]);
    const fullSize = (await readFile(file)).length;
    await truncate(file, fullSize - 10);
    expect(await refusal(file, openSafetensors(file))).toBe(
      `${file}: truncated: the header needs ${fullSize} bytes (tensor "b" ends at data offset 32) but the file has ${fullSize - 10}`,
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Pickles and torch zips, byte by byte

/** A protocol 2 pickle written opcode by opcode, as Python's pickler writes one (less the memo). */
class PickleBytes {
  private readonly out: number[] = [];

  op(...bytes: number[]): this {
    for (const byte of bytes) this.out.push(byte);
    return this;
  }

  raw(bytes: Uint8Array): this {
    for (const byte of bytes) this.out.push(byte);
    return this;
  }

  private text(value: string): number[] {
    return [...new TextEncoder().encode(value)];
  }

  proto(version = 2): this {
    return this.op(0x80, version);
  }
  mark(): this {
    return this.op(0x28);
  }
  stop(): this {
    return this.op(0x2e);
  }
  /** GLOBAL "module\nname\n" */
  global(module: string, name: string): this {
    return this.op(0x63, ...this.text(`${module}\n${name}\n`));
  }
  /** SHORT_BINUNICODE module, SHORT_BINUNICODE name, STACK_GLOBAL (protocol 4). */
  stackGlobal(module: string, name: string): this {
    return this.shortString(module).shortString(name).op(0x93);
  }
  string(value: string): this {
    const bytes = this.text(value);
    return this.op(0x58, bytes.length & 0xff, (bytes.length >> 8) & 0xff, 0, 0, ...bytes);
  }
  shortString(value: string): this {
    const bytes = this.text(value);
    return this.op(0x8c, bytes.length, ...bytes);
  }
  int(value: number): this {
    if (value >= 0 && value < 256) return this.op(0x4b, value);
    return this.op(0x4a, value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff, (value >>> 24) & 0xff);
  }
  /** MARK items TUPLE */
  tuple(...items: Array<(pickle: this) => void>): this {
    this.mark();
    for (const item of items) item(this);
    return this.op(0x74);
  }
  ints(values: readonly number[]): this {
    return this.tuple(...values.map((value) => (pickle: this) => void pickle.int(value)));
  }
  reduce(): this {
    return this.op(0x52);
  }
  emptyDict(): this {
    return this.op(0x7d);
  }
  orderedDict(): this {
    return this.global("collections", "OrderedDict").op(0x29).reduce();
  }
  setItems(...pairs: Array<[string, (pickle: this) => void]>): this {
    this.mark();
    for (const [key, value] of pairs) {
      this.string(key);
      value(this);
    }
    return this.op(0x75);
  }

  /** torch._utils._rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, size, stride, False, OrderedDict()) */
  tensor(view: TensorView): this {
    return this.global("torch._utils", "_rebuild_tensor_v2")
      .tuple(
        (p) => p.tuple((q) => q.string("storage"), (q) => q.global("torch", view.storageType), (q) => q.string(view.key), (q) => q.string("cpu"), (q) => q.int(view.numel)).op(0x51),
        (p) => p.int(view.offset),
        (p) => p.ints(view.shape),
        (p) => p.ints(view.stride),
        (p) => p.op(0x89),
        (p) => p.orderedDict(),
      )
      .reduce();
  }

  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

interface TensorView {
  storageType: string;
  key: string;
  numel: number;
  offset: number;
  shape: number[];
  stride: number[];
}

const ascii = (text: string) => new TextEncoder().encode(text);
const f32Bytes = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);
const f16Bytes = (values: number[]) => new Uint8Array(Uint16Array.from(values, toFloat16Bits).buffer);
const i64Bytes = (values: number[]) => new Uint8Array(BigInt64Array.from(values, BigInt).buffer);
const range = (count: number, from = 0) => Array.from({ length: count }, (_, i) => from + i);

/** A torch zip (the shared writer's container) holding this data.pkl and these storages. */
function torchZip(pickle: Uint8Array, storages: Record<string, Uint8Array>, extra: Array<[string, Uint8Array]> = []): Uint8Array {
  return encodeTorchZip([
    ["archive/data.pkl", pickle],
    ...extra,
    ...Object.entries(storages).map(([key, bytes]): [string, Uint8Array] => [`archive/data/${key}`, bytes]),
    ["archive/version", ascii("3\n")],
  ]);
}

/**
 * A plain zip of stored entries, not the way torch lays it out: with `zip64Extra`, every size and offset in the
 * central directory is 0xFFFFFFFF and the real ones sit in zip64 extra fields (as in a > 4 GB checkpoint);
 * `deflate` compresses the entries.
 */
function plainZip(records: Array<[string, Uint8Array]>, options: { zip64Extra?: boolean; deflate?: boolean } = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  const directory: Uint8Array[] = [];
  let offset = 0;
  const fields = (...values: Array<[2 | 4 | 8, number]>) => {
    const bytes = new Uint8Array(values.reduce((sum, [size]) => sum + size, 0));
    const view = new DataView(bytes.buffer);
    let at = 0;
    for (const [size, value] of values) {
      if (size === 2) view.setUint16(at, value, true);
      else if (size === 4) view.setUint32(at, value >>> 0, true);
      else view.setBigUint64(at, BigInt(value), true);
      at += size;
    }
    return bytes;
  };
  for (const [name, data] of records) {
    const stored = options.deflate ? new Uint8Array(deflateRawSync(data)) : data;
    const method = options.deflate ? 8 : 0;
    const nameBytes = ascii(name);
    const crc = crc32(data);
    const local = fields([4, 0x04034b50], [2, 45], [2, 0], [2, method], [2, 0], [2, 0], [4, crc], [4, stored.length], [4, data.length], [2, nameBytes.length], [2, 0]);
    const big = options.zip64Extra ? 0xffffffff : undefined;
    const extra = options.zip64Extra ? fields([2, 1], [2, 24], [8, data.length], [8, stored.length], [8, offset]) : new Uint8Array(0);
    directory.push(
      fields(
        [4, 0x02014b50], [2, 45], [2, 45], [2, 0], [2, method], [2, 0], [2, 0], [4, crc],
        [4, big ?? stored.length], [4, big ?? data.length], [2, nameBytes.length], [2, extra.length], [2, 0], [2, 0], [2, 0], [4, 0], [4, big ?? offset],
      ),
      nameBytes,
      extra,
    );
    parts.push(local, nameBytes, stored);
    offset += local.length + nameBytes.length + stored.length;
  }
  const directorySize = directory.reduce((sum, part) => sum + part.length, 0);
  const end = fields([4, 0x06054b50], [2, 0], [2, 0], [2, records.length], [2, records.length], [4, directorySize], [4, offset], [2, 0]);
  return Buffer.concat([...parts, ...directory, end]);
}

const HALF_VALUES = [1, -2, 0.5, 65504, 2 ** -24, Infinity];
const MATRIX = range(12); // storage "1", a 3x4 matrix saved transposed
const SHARED = range(10, 100); // storage "2", viewed by three tensors

/** The hand-made state dict: an fp16 tensor, a transposed view, three views of one storage, I64 ids. */
function stateDictPickle(pickle: PickleBytes): PickleBytes {
  return pickle
    .orderedDict()
    .setItems(
      ["half", (p) => p.tensor({ storageType: "HalfStorage", key: "0", numel: 6, offset: 0, shape: [2, 3], stride: [3, 1] })],
      ["transposed", (p) => p.tensor({ storageType: "FloatStorage", key: "1", numel: 12, offset: 0, shape: [4, 3], stride: [1, 4] })],
      ["tail", (p) => p.tensor({ storageType: "FloatStorage", key: "2", numel: 10, offset: 6, shape: [4], stride: [1] })],
      ["matrix", (p) => p.tensor({ storageType: "FloatStorage", key: "2", numel: 10, offset: 0, shape: [2, 5], stride: [5, 1] })],
      ["every_third", (p) => p.tensor({ storageType: "FloatStorage", key: "2", numel: 10, offset: 1, shape: [3], stride: [3] })],
      ["ids", (p) => p.tensor({ storageType: "LongStorage", key: "3", numel: 5, offset: 0, shape: [1, 5], stride: [5, 1] })],
    )
    .emptyDict() // OrderedDict state: its _metadata, as torch's state_dict() carries
    .string("_metadata")
    .orderedDict()
    .op(0x73, 0x62); // SETITEM, BUILD
}

const HAND_MADE_STORAGES = {
  "0": f16Bytes(HALF_VALUES),
  "1": f32Bytes(MATRIX),
  "2": f32Bytes(SHARED),
  "3": i64Bytes(range(5)),
};

function expectHandMadeValues(values: Map<string, Float32Array>): void {
  bitsEqual(values.get("half") as Float32Array, HALF_VALUES);
  bitsEqual(values.get("transposed") as Float32Array, [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
  bitsEqual(values.get("tail") as Float32Array, [106, 107, 108, 109]);
  bitsEqual(values.get("matrix") as Float32Array, SHARED);
  bitsEqual(values.get("every_third") as Float32Array, [101, 104, 107]);
  bitsEqual(values.get("ids") as Float32Array, range(5));
}

describe("torch .ckpt", () => {
  it("reads an OrderedDict state dict: fp16, a transposed view, tensors sharing a storage, I64", async () => {
    const pickle = stateDictPickle(new PickleBytes().proto()).stop().bytes();
    const file = await writeTemp(torchZip(pickle, HAND_MADE_STORAGES, [["archive/byteorder", ascii("little")]]), ".ckpt");
    const checkpoint = await openCkpt(file);
    expect(checkpoint.format).toBe("ckpt");
    expect(checkpoint.metadata).toEqual({});
    expect([...checkpoint.tensors.keys()]).toEqual(["half", "transposed", "tail", "matrix", "every_third", "ids"]);
    expect(checkpoint.tensors.get("half")).toMatchObject({ dtype: "F16", shape: [2, 3] });
    expect(checkpoint.tensors.get("transposed")).toMatchObject({ dtype: "F32", shape: [4, 3] });
    expect(checkpoint.tensors.get("ids")).toMatchObject({ dtype: "I64", shape: [1, 5] });
    expectHandMadeValues(await readAll(checkpoint));
  });

  it("reads the state_dict of a Lightning-style checkpoint and ignores the rest", async () => {
    const pickle = new PickleBytes()
      .proto()
      .emptyDict()
      .setItems(["state_dict", (p) => stateDictPickle(p)], ["global_step", (p) => p.int(5)], ["epoch", (p) => p.int(1)])
      .stop()
      .bytes();
    const checkpoint = await openCheckpoint(await writeTemp(torchZip(pickle, HAND_MADE_STORAGES), ".ckpt"));
    expect([...checkpoint.tensors.keys()]).toEqual(["half", "transposed", "tail", "matrix", "every_third", "ids"]);
    expectHandMadeValues(await readAll(checkpoint));
  });

  it("reads what the shared writer lays out as torch.save does (FB padding, data descriptors, zip64 end records)", async () => {
    const file = path.join(dir, "writer.ckpt");
    const tensors: FixtureTensor[] = [
      { name: "first_stage_model.decoder.conv_in.weight", dtype: "F16", shape: [F16_SPECIALS.length], values: F16_SPECIALS },
      { name: "model.diffusion_model.out.2.bias", dtype: "BF16", shape: [BF16_EXACT.length], values: BF16_EXACT },
      { name: "w", dtype: "F32", shape: [2, 2], values: [1, 2, 3, 4] },
      { name: "position_ids", dtype: "I64", shape: [1, 4], values: [0, 1, 2, 3] },
    ];
    await writeTorchCkpt(file, tensors, { stateDictKey: "state_dict", archiveName: "sd-v1-5", byteorder: false });
    const values = await readAll(await openCheckpoint(file));
    for (const tensor of tensors) bitsEqual(values.get(tensor.name) as Float32Array, tensor.values);
  });

  it("reads zip64 extra fields, where a > 4 GB checkpoint keeps its sizes and offsets", async () => {
    const pickle = stateDictPickle(new PickleBytes().proto()).stop().bytes();
    const records = Object.entries(HAND_MADE_STORAGES).map(([key, bytes]): [string, Uint8Array] => [`archive/data/${key}`, bytes]);
    const file = await writeTemp(plainZip([["archive/data.pkl", pickle], ...records], { zip64Extra: true }), ".ckpt");
    expectHandMadeValues(await readAll(await openCkpt(file)));
  });

  describe("matches real torch", () => {
    // Read at collection time, so each file is its own test below.
    const expected = JSON.parse(readFileSync(path.join(FIXTURES, "expected.json"), "utf8")) as Record<string, Record<string, { dtype: string; shape: number[]; f32: string }>>;
    for (const name of ["torch-plain.ckpt", "torch-lightning.ckpt"]) {
      it(`reads every tensor of ${name} (torch ${String(expected.torch_version)}) bit for bit`, async () => {
        const checkpoint = await openCheckpoint(path.join(FIXTURES, name));
        const tensors = new Map(checkpoint.tensors);
        const values = await readAll(checkpoint);
        expect([...values.keys()].sort()).toEqual(Object.keys(expected[name]).sort());
        for (const [tensorName, golden] of Object.entries(expected[name])) {
          expect(tensors.get(tensorName), tensorName).toMatchObject({ dtype: golden.dtype, shape: golden.shape });
          const goldenValues = new Float32Array(Uint8Array.from(Buffer.from(golden.f32, "base64")).buffer);
          const actual = values.get(tensorName) as Float32Array;
          expect(Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(Buffer.from(goldenValues.buffer)), tensorName).toBe(true);
        }
      });
    }
  });

  it("refuses torch's legacy (pre-1.6) format, saying how to convert it", async () => {
    const file = path.join(FIXTURES, "torch-legacy.pt");
    for (const opening of [openCkpt(file), openCheckpoint(file)]) {
      expect(await refusal(file, opening)).toMatch(/legacy torch file \(the pre-1\.6 format\).*re-save it with torch >= 1\.6.*\.safetensors/);
    }
  });

  const ckptRefusals: Array<[string, () => Uint8Array, RegExp]> = [
    [
      "a big-endian checkpoint",
      () => torchZip(stateDictPickle(new PickleBytes().proto()).stop().bytes(), HAND_MADE_STORAGES, [["archive/byteorder", ascii("big")]]),
      /saved on a big-endian machine/,
    ],
    [
      "compressed entries",
      () => plainZip([["archive/data.pkl", new PickleBytes().proto().emptyDict().stop().bytes()]], { deflate: true }),
      /zip entry "archive\/data.pkl" is compressed \(deflate\); torch.save stores entries uncompressed/,
    ],
    ["a zip without data.pkl", () => plainZip([["model/weights.bin", new Uint8Array(8)]]), /a zip without an <archive>\/data.pkl entry/],
    [
      "a missing storage entry",
      () => {
        const { "3": _ids, ...otherStorages } = HAND_MADE_STORAGES;
        return torchZip(stateDictPickle(new PickleBytes().proto()).stop().bytes(), otherStorages);
      },
      /tensor "ids" lives in storage "3", but the zip has no entry archive\/data\/3/,
    ],
    [
      "a view past the end of its storage",
      () =>
        torchZip(
          new PickleBytes().proto().orderedDict().setItems(["w", (p) => p.tensor({ storageType: "FloatStorage", key: "0", numel: 4, offset: 2, shape: [2, 2], stride: [2, 1] })]).stop().bytes(),
          { "0": f32Bytes([1, 2, 3, 4]) },
        ),
      /tensor "w" \(shape \[2, 2\], stride \[2, 1\], offset 2\) reaches past its storage of 4 elements/,
    ],
    [
      "a storage shorter than it says",
      () =>
        torchZip(
          new PickleBytes().proto().orderedDict().setItems(["w", (p) => p.tensor({ storageType: "FloatStorage", key: "0", numel: 8, offset: 0, shape: [8], stride: [1] })]).stop().bytes(),
          { "0": f32Bytes([1, 2, 3, 4]) },
        ),
      /truncated: storage archive\/data\/0 \(F32\) needs 32 bytes but has 16/,
    ],
    ["a pickle that is a list", () => torchZip(new PickleBytes().proto().op(0x5d).stop().bytes(), {}), /holds a list, not a dict of tensors/],
    ["a state dict without tensors", () => torchZip(new PickleBytes().proto().emptyDict().setItems(["global_step", (p) => p.int(5)]).stop().bytes(), {}), /holds no tensors/],
    ["a pickle that ends early", () => torchZip(new PickleBytes().proto().emptyDict().mark().string("a").bytes(), {}), /archive\/data.pkl is not a pickle of tensors that can be read: it ends early/],
    ["an unknown storage type", () => torchZip(new PickleBytes().proto().orderedDict().setItems(["w", (p) => p.tensor({ storageType: "ComplexFloatStorage", key: "0", numel: 1, offset: 0, shape: [1], stride: [1] })]).stop().bytes(), { "0": new Uint8Array(8) }), /the pickle asks for torch.ComplexFloatStorage/],
    [
      "a broadcast view of billions of elements",
      () => torchZip(new PickleBytes().proto().orderedDict().setItems(["w", (p) => p.tensor({ storageType: "FloatStorage", key: "0", numel: 1, offset: 0, shape: [100000, 100000], stride: [0, 0] })]).stop().bytes(), { "0": f32Bytes([1]) }),
      /tensor "w" repeats the 1 elements of its storage as 10000000000 \(a broadcast view\)/,
    ],
    ["an integer of 100,000 bytes", () => torchZip(new PickleBytes().proto().op(0x8b, 0xa0, 0x86, 0x01, 0x00).raw(new Uint8Array(100000)).stop().bytes(), {}), /an integer of 100000 bytes is far past any size or count/],
    ["an opcode torch never writes", () => torchZip(new PickleBytes().proto().op(0x82, 1).stop().bytes(), {}), /opcode 0x82 \(EXT1\) at byte 2 is not one torch.save writes/],
    ["a call with nothing on the stack", () => torchZip(new PickleBytes().proto().reduce().stop().bytes(), {}), /the stack is empty at byte 3/],
  ];
  it.each(ckptRefusals)("refuses %s, saying what is wrong", async (_, bytes, expectedMessage) => {
    const file = await writeTemp(bytes(), ".ckpt");
    expect(await refusal(file, openCkpt(file))).toMatch(expectedMessage);
  });

  it("reads a broadcast (stride 0) view, as CLIP's expanded position_ids are saved", async () => {
    const pickle = new PickleBytes()
      .proto()
      .orderedDict()
      .setItems(["position_ids", (p) => p.tensor({ storageType: "LongStorage", key: "0", numel: 5, offset: 0, shape: [3, 5], stride: [0, 1] })])
      .stop()
      .bytes();
    const values = await readAll(await openCkpt(await writeTemp(torchZip(pickle, { "0": i64Bytes(range(5)) }), ".ckpt")));
    bitsEqual(values.get("position_ids") as Float32Array, [...range(5), ...range(5), ...range(5)]);
  });

  it("refuses a truncated download (the zip's directory is at the end)", async () => {
    const file = path.join(dir, "cut.ckpt");
    await writeTorchCkpt(file, [{ name: "w", dtype: "F32", shape: [64], values: range(64) }]);
    await truncate(file, (await readFile(file)).length - 100);
    expect(await refusal(file, openCkpt(file))).toMatch(/not a complete zip archive: no end-of-central-directory record/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The attack: a pickle that runs a shell command when Python loads it

describe("a pickle that would run a command", () => {
  let marker: string;
  beforeAll(() => {
    marker = path.join(dir, "pwned");
  });

  /** callable(*args) where the callable is the named global: what `pickle.loads` would execute. */
  const call = (module: string, name: string, args: (pickle: PickleBytes) => void) =>
    new PickleBytes().proto().global(module, name).tuple(args).reduce();
  const shell = () => `touch ${marker}`;
  const attacks: Array<[string, () => PickleBytes]> = [
    ["posix.system", () => call("posix", "system", (p) => p.string(shell()))],
    ["os.system", () => call("os", "system", (p) => p.string(shell()))],
    ["nt.system", () => call("nt", "system", (p) => p.string(shell()))],
    ["builtins.eval", () => call("builtins", "eval", (p) => p.string(`__import__('os').system('${shell()}')`))],
    ["subprocess.Popen", () => call("subprocess", "Popen", (p) => p.op(0x5d).mark().string("touch").string(marker).op(0x65))],
    [
      "__builtin__.getattr",
      // getattr(__import__('os'), 'system')('touch …')
      () =>
        new PickleBytes()
          .proto()
          .global("__builtin__", "getattr")
          .tuple(
            (p) => p.global("__builtin__", "__import__").tuple((q) => q.string("os")).reduce(),
            (p) => p.string("system"),
          )
          .reduce()
          .tuple((p) => p.string(shell()))
          .reduce(),
    ],
  ];

  it.each(attacks)("refuses %s by name and runs nothing", async (qualifiedName, attack) => {
    const pickle = attack().stop().bytes();
    const file = await writeTemp(torchZip(pickle, {}), ".ckpt");
    for (const opening of [openCkpt(file), openCheckpoint(file)]) {
      const message = await refusal(file, opening);
      expect(message).toBe(
        `${file}: the pickle asks for ${qualifiedName}, which a checkpoint never needs: refused without running anything (only tensors and plain containers are read)`,
      );
    }
    expect(existsSync(marker)).toBe(false);
  });

  it("refuses a STACK_GLOBAL (protocol 4) attack hidden in a state dict after a real tensor", async () => {
    const pickle = new PickleBytes()
      .proto(4)
      .orderedDict()
      .setItems(
        ["w", (p) => p.tensor({ storageType: "FloatStorage", key: "0", numel: 2, offset: 0, shape: [2], stride: [1] })],
        ["evil", (p) => p.stackGlobal("posix", "system").tuple((q) => q.shortString(shell())).reduce()],
      )
      .stop()
      .bytes();
    const file = await writeTemp(torchZip(pickle, { "0": f32Bytes([1, 2]) }), ".ckpt");
    expect(await refusal(file, openCheckpoint(file))).toContain("the pickle asks for posix.system, which a checkpoint never needs");
    expect(existsSync(marker)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Choosing the reader

describe("openCheckpoint", () => {
  it("chooses by content, not by extension", async () => {
    const safetensorsBytes = rawSafetensors({ w: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, f32Bytes([3]));
    const misnamed = await openCheckpoint(await writeTemp(safetensorsBytes, ".ckpt"));
    expect(misnamed.format).toBe("safetensors");
    expect([...(await readAll(misnamed)).get("w")!]).toEqual([3]);

    const pickle = stateDictPickle(new PickleBytes().proto()).stop().bytes();
    const zip = await openCheckpoint(await writeTemp(torchZip(pickle, HAND_MADE_STORAGES), ".safetensors"));
    expect(zip.format).toBe("ckpt");
    await zip.close();
  });

  it("reads a safetensors file whose header length starts with pickle's PROTO byte (0x80) as safetensors", async () => {
    // Pad the header JSON with spaces (as safetensors writers pad to 8) until its length's low byte is 0x80.
    const header = JSON.stringify({ w: { dtype: "F32", shape: [1], data_offsets: [0, 4] } });
    const json = header.padEnd(0x80, " ");
    const bytes = new Uint8Array(8 + json.length + 4);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
    bytes.set(new TextEncoder().encode(json), 8);
    new DataView(bytes.buffer).setFloat32(8 + json.length, 5, true);
    expect(bytes[0]).toBe(0x80);
    const opened = await openCheckpoint(await writeTemp(bytes, ".safetensors"));
    expect(opened.format).toBe("safetensors");
    expect([...(await readAll(opened)).get("w")!]).toEqual([5]);
  });

  it("refuses what is neither, in one line", async () => {
    for (const bytes of [ascii("<!DOCTYPE html><html>Not Found</html>"), new Uint8Array(0), Uint8Array.of(1, 2)]) {
      const file = await writeTemp(bytes, ".ckpt");
      expect(await refusal(file, openCheckpoint(file))).toMatch(/not a checkpoint: expected a \.safetensors or a torch \.ckpt \(zip\) file, but it starts with/);
    }
  });

  it("gives a damaged .safetensors the safetensors reader's own reason", async () => {
    const file = await writeTemp(rawSafetensors({ w: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, f32Bytes([1])), ".safetensors");
    expect(await refusal(file, openCheckpoint(file))).toMatch(/truncated: the header needs \d+ bytes/);
  });

  it("leaves no file handle open when it refuses", async () => {
    const file = await writeTemp(rawSafetensors("{bad"), ".safetensors");
    await refusal(file, openCheckpoint(file));
    // On Linux each open handle is a link in /proc/self/fd; the refused file must not be among them.
    if (existsSync("/proc/self/fd")) {
      const targets = await Promise.all((await readdir("/proc/self/fd")).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => "")));
      expect(targets).not.toContain(file);
    }
  });
});
