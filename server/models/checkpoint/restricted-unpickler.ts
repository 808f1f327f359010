/**
 * A pickle reader that never runs anything. A torch checkpoint's data.pkl is a pickle, and a pickle is a program:
 * GLOBAL names any Python callable and REDUCE calls it, so `posix.system("…")` is three opcodes. Here every GLOBAL
 * is looked up in an allowlist (modelled on torch's `weights_only=True` unpickler) and anything else is refused by
 * name when it is read; the allowed names are never called either, only interpreted: an OrderedDict becomes a
 * PickleDict, `_rebuild_tensor_v2` a PickleTensor describing where the tensor's elements lie.
 *
 * Opcodes: protocols 2 to 5 as torch.save writes them, plus the few protocol 0/1 numeric ones that cost nothing.
 */
import { CheckpointError, type CheckpointDtype } from "./checkpoint-tensor.ts";

/** A Python value as the pickle built it. Lists are arrays; ints are numbers, or bigints past 2^53. */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | PickleTuple
  | PickleDict
  | PickleSet
  | PickleGlobal
  | PickleStorage
  | PickleTensor
  | PickleOpaque;

export class PickleTuple {
  constructor(readonly items: readonly PickleValue[]) {}
}

/** A dict or an OrderedDict (insertion order is kept either way). */
export class PickleDict {
  readonly entries = new Map<PickleValue, PickleValue>();
}

export class PickleSet {
  constructor(readonly items: PickleValue[]) {}
}

/** A reference to an allowed Python global (a storage type, a dtype, a function that was not called yet). */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}

  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** One torch storage: its bytes are the zip entry `<archive>/data/<key>`, `elementCount` elements of `dtype`. */
export class PickleStorage {
  constructor(
    readonly key: string,
    readonly dtype: CheckpointDtype,
    readonly location: string,
    readonly elementCount: number,
  ) {}
}

/** A tensor as a view of a storage: element [i, j, …] is storage[storageOffset + i·stride[0] + j·stride[1] + …]. */
export class PickleTensor {
  constructor(
    readonly storage: PickleStorage,
    readonly storageOffset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {}
}

/**
 * An object of a class that training checkpoints carry outside the state dict (Lightning's callbacks are keyed by
 * their class, numpy scalars hold a step count). It is only a name here: nothing of it is built or called.
 */
export class PickleOpaque {
  constructor(readonly description: string) {}
}

const STORAGE_DTYPES: Record<string, CheckpointDtype> = {
  FloatStorage: "F32",
  HalfStorage: "F16",
  BFloat16Storage: "BF16",
  DoubleStorage: "F64",
  LongStorage: "I64",
  IntStorage: "I32",
  ShortStorage: "I16",
  CharStorage: "I8",
  ByteStorage: "U8",
  BoolStorage: "BOOL",
};

/** What an allowed global is for; every role is interpreted below, none is executed. */
type GlobalRole =
  | { kind: "storage-type"; dtype: CheckpointDtype }
  | { kind: "ordered-dict" }
  | { kind: "rebuild-tensor"; withGradArguments: boolean }
  | { kind: "rebuild-parameter" }
  | { kind: "parameter" }
  | { kind: "rebuild-from-type" }
  | { kind: "tensor-type" }
  | { kind: "dtype" }
  | { kind: "size" }
  | { kind: "device" }
  | { kind: "codecs-encode" }
  | { kind: "set" }
  | { kind: "bytearray" }
  | { kind: "opaque" };

const ALLOWED_GLOBALS = new Map<string, GlobalRole>([
  ["collections.OrderedDict", { kind: "ordered-dict" }],
  ["torch._utils._rebuild_tensor", { kind: "rebuild-tensor", withGradArguments: false }],
  ["torch._utils._rebuild_tensor_v2", { kind: "rebuild-tensor", withGradArguments: true }],
  ["torch._utils._rebuild_parameter", { kind: "rebuild-parameter" }],
  ["torch._utils._rebuild_parameter_with_state", { kind: "rebuild-parameter" }],
  ["torch._tensor._rebuild_from_type_v2", { kind: "rebuild-from-type" }],
  ["torch.nn.parameter.Parameter", { kind: "parameter" }],
  ["torch.Tensor", { kind: "tensor-type" }],
  ["torch.Size", { kind: "size" }],
  ["torch.device", { kind: "device" }],
  ["_codecs.encode", { kind: "codecs-encode" }],
  ["builtins.set", { kind: "set" }],
  ["builtins.frozenset", { kind: "set" }],
  ["builtins.bytearray", { kind: "bytearray" }],
  ["__builtin__.set", { kind: "set" }],
  ["__builtin__.frozenset", { kind: "set" }],
  ["__builtin__.bytearray", { kind: "bytearray" }],
  ...Object.entries(STORAGE_DTYPES).flatMap(([name, dtype]): [string, GlobalRole][] => [
    [`torch.${name}`, { kind: "storage-type", dtype }],
    [`torch.cuda.${name}`, { kind: "storage-type", dtype }],
  ]),
  ...["float16", "float32", "float64", "bfloat16", "half", "float", "double", "int8", "uint8", "int16", "int32", "int64", "bool"].map(
    (name): [string, GlobalRole] => [`torch.${name}`, { kind: "dtype" }],
  ),
  // Outside the state dict only (ignored there), and never called: torch's own weights_only list allows the numpy ones.
  ...[
    "numpy.core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray.scalar",
    "numpy._core.multiarray._reconstruct",
    "numpy.ndarray",
    "numpy.dtype",
  ].map((name): [string, GlobalRole] => [name, { kind: "opaque" }]),
]);

/** Lightning stores its callbacks' state keyed by the callback class: a name, harmless when nothing is called. */
const OPAQUE_MODULE_PREFIXES = ["pytorch_lightning.", "lightning.", "lightning_fabric."];

function roleOf(qualifiedName: string): GlobalRole | undefined {
  const role = ALLOWED_GLOBALS.get(qualifiedName);
  if (role) return role;
  if (OPAQUE_MODULE_PREFIXES.some((prefix) => qualifiedName.startsWith(prefix))) return { kind: "opaque" };
  return undefined;
}

/** Python ints in a checkpoint are sizes, offsets and step counts: 64 bytes is far more than any needs. */
const MAX_INTEGER_BYTES = 64;
/** Text lines hold a module or a global's name, or a protocol 0 number. */
const MAX_LINE_BYTES = 1024;

const OPCODE_NAMES: Record<number, string> = {
  0x2e: "STOP",
  0x46: "FLOAT",
  0x53: "STRING",
  0x56: "UNICODE",
  0x82: "EXT1",
  0x83: "EXT2",
  0x84: "EXT4",
  0x97: "NEXT_BUFFER",
  0x98: "READONLY_BUFFER",
};

function typeName(value: PickleValue | undefined): string {
  if (value === undefined) return "nothing";
  if (value === null) return "None";
  if (Array.isArray(value)) return "a list";
  if (value instanceof Uint8Array) return "bytes";
  if (typeof value === "object") return `a ${value.constructor.name.replace(/^Pickle/, "").toLowerCase()}`;
  return `a ${typeof value}`;
}

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8");

class RestrictedUnpickler {
  private position = 0;
  private readonly view: DataView;
  private readonly stack: PickleValue[] = [];
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, PickleValue>();
  private readonly storages = new Map<string, PickleStorage>();

  constructor(
    private readonly bytes: Uint8Array,
    private readonly file: string,
    private readonly source: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private fail(reason: string): never {
    throw new CheckpointError(this.file, `${this.source} is not a pickle of tensors that can be read: ${reason}`);
  }

  private refuseGlobal(qualifiedName: string): never {
    throw new CheckpointError(
      this.file,
      `the pickle asks for ${qualifiedName}, which a checkpoint never needs: refused without running anything (only tensors and plain containers are read)`,
    );
  }

  private take(count: number): Uint8Array {
    if (count < 0 || this.position + count > this.bytes.length) this.fail(`it ends early, at byte ${this.bytes.length}`);
    const slice = this.bytes.subarray(this.position, this.position + count);
    this.position += count;
    return slice;
  }

  private u8(): number {
    return this.take(1)[0];
  }

  private u16(): number {
    const at = this.position;
    this.take(2);
    return this.view.getUint16(at, true);
  }

  private u32(): number {
    const at = this.position;
    this.take(4);
    return this.view.getUint32(at, true);
  }

  private i32(): number {
    const at = this.position;
    this.take(4);
    return this.view.getInt32(at, true);
  }

  private u64(): number {
    const at = this.position;
    this.take(8);
    const value = this.view.getBigUint64(at, true);
    if (value > BigInt(this.bytes.length)) this.fail(`a length of ${value} bytes at byte ${at} is past its end`);
    return Number(value);
  }

  private line(): string {
    const end = this.bytes.indexOf(0x0a, this.position);
    if (end < 0) this.fail("it ends inside a text line");
    if (end - this.position > MAX_LINE_BYTES) this.fail(`a text line at byte ${this.position} is over ${MAX_LINE_BYTES} bytes`);
    const text = latin1.decode(this.bytes.subarray(this.position, end));
    this.position = end + 1;
    return text;
  }

  private push(value: PickleValue): void {
    this.stack.push(value);
  }

  /** Values since the last MARK are the current frame; an opcode cannot reach below it. */
  private frameIsEmpty(): boolean {
    return this.stack.length <= (this.marks.at(-1) ?? 0);
  }

  private pop(): PickleValue {
    if (this.frameIsEmpty()) this.fail(`the stack is empty at byte ${this.position}`);
    return this.stack.pop() as PickleValue;
  }

  private top(): PickleValue {
    if (this.frameIsEmpty()) this.fail(`the stack is empty at byte ${this.position}`);
    return this.stack[this.stack.length - 1];
  }

  private popMark(): PickleValue[] {
    const start = this.marks.pop();
    if (start === undefined) this.fail(`an opcode at byte ${this.position} needs a MARK that is not there`);
    return this.stack.splice(start);
  }

  /** Python ints: numbers while exact, bigints beyond. */
  private static integer(value: bigint): number | bigint {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }

  /** LONG1/LONG4: a little-endian two's-complement integer of `length` bytes. */
  private longBytes(length: number): number | bigint {
    // Building a huge BigInt byte by byte is quadratic: a few MB of digits would stall the server.
    if (length > MAX_INTEGER_BYTES) this.fail(`an integer of ${length} bytes is far past any size or count`);
    const digits = this.take(length);
    let value = 0n;
    for (let i = digits.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(digits[i]);
    if (length > 0 && digits[length - 1] & 0x80) value -= 1n << BigInt(8 * length);
    return RestrictedUnpickler.integer(value);
  }

  private global(module: string, name: string): PickleGlobal {
    const qualifiedName = `${module}.${name}`;
    if (!roleOf(qualifiedName)) this.refuseGlobal(qualifiedName);
    return new PickleGlobal(module, name);
  }

  private index(value: PickleValue, what: string): number {
    if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value;
    return this.fail(`${what} is ${typeof value === "number" || typeof value === "bigint" ? value : typeName(value)}, not a non-negative integer`);
  }

  private indexList(value: PickleValue, what: string): number[] {
    const items = value instanceof PickleTuple ? value.items : Array.isArray(value) ? value : undefined;
    if (!items) this.fail(`${what} is ${typeName(value)}, not a tuple`);
    return items.map((item, i) => this.index(item, `${what}[${i}]`));
  }

  /** BINPERSID: torch names each storage `('storage', StorageType, key, location, numel)`. */
  private persistentLoad(pid: PickleValue): PickleStorage {
    const items = pid instanceof PickleTuple ? pid.items : undefined;
    const tag = items?.[0] instanceof Uint8Array ? latin1.decode(items[0]) : items?.[0];
    if (!items || tag !== "storage" || items.length < 5) this.fail(`a persistent id is ${typeName(pid)}, not a torch storage reference`);
    const [, storageType, rawKey, location, numel] = items;
    const role = storageType instanceof PickleGlobal ? roleOf(storageType.qualifiedName) : undefined;
    if (role?.kind !== "storage-type") this.fail(`a storage's type is ${typeName(storageType)}, not a torch storage type`);
    if (items.length > 5 && items[5] !== null) this.fail(`storage "${String(rawKey)}" is a view of another storage (the pre-1.6 format)`);
    const key = typeof rawKey === "number" ? String(rawKey) : rawKey;
    if (typeof key !== "string" || !/^[A-Za-z0-9_.-]+$/.test(key)) this.fail(`a storage key is ${typeName(rawKey)}, not a plain name`);
    const known = this.storages.get(key);
    if (known) {
      if (known.dtype !== role.dtype) this.fail(`storage "${key}" is read both as ${known.dtype} and as ${role.dtype}`);
      return known;
    }
    const storage = new PickleStorage(key, role.dtype, typeof location === "string" ? location : "cpu", this.index(numel, `storage "${key}" size`));
    this.storages.set(key, storage);
    return storage;
  }

  private rebuildTensor(args: readonly PickleValue[], withGradArguments: boolean, name: string): PickleTensor {
    if (args.length < (withGradArguments ? 6 : 4)) this.fail(`${name} is given ${args.length} arguments`);
    const [storage, offset, shape, stride] = args;
    if (!(storage instanceof PickleStorage)) this.fail(`${name}'s storage is ${typeName(storage)}, not a storage`);
    const sizes = this.indexList(shape, "a tensor's size");
    const strides = this.indexList(stride, "a tensor's stride");
    if (sizes.length !== strides.length) this.fail(`a tensor has size [${sizes}] but stride [${strides}]`);
    return new PickleTensor(storage, this.index(offset, "a tensor's storage offset"), sizes, strides);
  }

  private argumentsOf(value: PickleValue, callee: string): readonly PickleValue[] {
    if (value instanceof PickleTuple) return value.items;
    if (Array.isArray(value)) return value;
    return this.fail(`the arguments to ${callee} are ${typeName(value)}, not a tuple`);
  }

  private static text(value: PickleValue): string | undefined {
    if (typeof value === "string") return value;
    if (value instanceof Uint8Array) return latin1.decode(value);
    return undefined;
  }

  /** REDUCE, NEWOBJ, INST, OBJ: interprets an allowed global applied to its arguments. Nothing runs. */
  private call(callee: PickleValue, argsValue: PickleValue, depth = 0): PickleValue {
    // _rebuild_from_type_v2 calls its inner function; a self-containing list must not recurse forever.
    if (depth > 4) this.fail("it nests tensor rebuilds inside each other");
    if (callee instanceof PickleOpaque) return new PickleOpaque(`${callee.description}(…)`);
    if (!(callee instanceof PickleGlobal)) return this.fail(`it calls ${typeName(callee)}, which is not callable`);
    const name = callee.qualifiedName;
    const args = this.argumentsOf(argsValue, name);
    const role = roleOf(name);
    switch (role?.kind) {
      case "ordered-dict": {
        const dict = new PickleDict();
        const pairs = args[0];
        for (const pair of Array.isArray(pairs) ? pairs : []) {
          const items = pair instanceof PickleTuple ? pair.items : Array.isArray(pair) ? pair : [];
          if (items.length === 2) dict.entries.set(items[0], items[1]);
        }
        return dict;
      }
      case "rebuild-tensor":
        return this.rebuildTensor(args, role.withGradArguments, name);
      case "rebuild-parameter":
      case "parameter": {
        const tensor = args[0] ?? null;
        if (!(tensor instanceof PickleTensor)) this.fail(`${name} wraps ${typeName(tensor)}, not a tensor`);
        return tensor;
      }
      case "rebuild-from-type": {
        // (func, new_type, args, state): torch rebuilds with func(*args) and then casts to new_type.
        const [inner, newType, innerArgs] = args;
        const typeRole = newType instanceof PickleGlobal ? roleOf(newType.qualifiedName) : undefined;
        if (typeRole?.kind !== "tensor-type" && typeRole?.kind !== "parameter") {
          this.fail(`${name} makes ${newType instanceof PickleGlobal ? newType.qualifiedName : typeName(newType)}, not a tensor`);
        }
        return this.call(inner ?? null, innerArgs ?? null, depth + 1);
      }
      case "size":
        return new PickleTuple(this.indexList(args[0] ?? new PickleTuple([]), "a torch.Size"));
      case "device":
        return typeof args[0] === "string" ? args[0] : "cpu";
      case "codecs-encode": {
        // How protocol 2 pickles bytes: _codecs.encode(text, "latin1").
        const text = RestrictedUnpickler.text(args[0] ?? null);
        const encoding = RestrictedUnpickler.text(args[1] ?? "utf-8")?.toLowerCase().replace(/[-_]/g, "");
        if (text === undefined) this.fail(`_codecs.encode is given ${typeName(args[0])}, not text`);
        if (encoding === "latin1" || encoding === "iso88591") return Uint8Array.from(text, (char) => char.charCodeAt(0) & 0xff);
        if (encoding === "utf8") return new TextEncoder().encode(text);
        return this.fail(`_codecs.encode asks for encoding ${String(args[1])}`);
      }
      case "set": {
        const items = args[0];
        return new PickleSet(Array.isArray(items) ? [...items] : items instanceof PickleTuple ? [...items.items] : []);
      }
      case "bytearray": {
        const source = args[0];
        if (source instanceof Uint8Array) return Uint8Array.from(source);
        return new Uint8Array(0);
      }
      case "opaque":
        return new PickleOpaque(`${name}(…)`);
      default:
        return this.fail(`it calls ${name}, which torch.save never calls`);
    }
  }

  run(): PickleValue {
    for (;;) {
      const at = this.position;
      const opcode = this.u8();
      switch (opcode) {
        case 0x80: // PROTO
          if (this.u8() > 5) this.fail("it is a pickle protocol newer than 5");
          break;
        case 0x95: // FRAME: the bytes are all here already
          this.u64();
          break;
        case 0x2e: // STOP
          if (this.marks.length > 0 || this.stack.length !== 1) this.fail(`its stack holds ${this.stack.length} values at STOP`);
          return this.stack[0];
        case 0x28: // MARK
          this.marks.push(this.stack.length);
          break;
        case 0x30: // POP
          // Python pops the last MARK when the current frame is empty
          if (this.marks.length > 0 && this.stack.length === this.marks.at(-1)) this.popMark();
          else this.pop();
          break;
        case 0x31: // POP_MARK
          this.popMark();
          break;
        case 0x32: // DUP
          this.push(this.top());
          break;

        case 0x4e: // NONE
          this.push(null);
          break;
        case 0x88: // NEWTRUE
          this.push(true);
          break;
        case 0x89: // NEWFALSE
          this.push(false);
          break;
        case 0x4a: // BININT
          this.push(this.i32());
          break;
        case 0x4b: // BININT1
          this.push(this.u8());
          break;
        case 0x4d: // BININT2
          this.push(this.u16());
          break;
        case 0x8a: // LONG1
          this.push(this.longBytes(this.u8()));
          break;
        case 0x8b: {
          // LONG4
          const length = this.i32();
          this.push(this.longBytes(length));
          break;
        }
        case 0x49: {
          // INT (protocol 0): "01"/"00" are True/False
          const text = this.line();
          if (text === "01" || text === "00") this.push(text === "01");
          else if (/^[+-]?\d+$/.test(text)) this.push(RestrictedUnpickler.integer(BigInt(text)));
          else this.fail(`INT at byte ${at} is "${text}"`);
          break;
        }
        case 0x4c: {
          // LONG (protocol 0)
          const text = this.line().replace(/L$/, "");
          if (!/^[+-]?\d+$/.test(text)) this.fail(`LONG at byte ${at} is "${text}"`);
          this.push(RestrictedUnpickler.integer(BigInt(text)));
          break;
        }
        case 0x47: {
          // BINFLOAT: big-endian, unlike everything else
          const start = this.position;
          this.take(8);
          this.push(this.view.getFloat64(start, false));
          break;
        }

        case 0x58: // BINUNICODE
          this.push(utf8.decode(this.take(this.u32())));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.push(utf8.decode(this.take(this.u8())));
          break;
        case 0x8d: // BINUNICODE8
          this.push(utf8.decode(this.take(this.u64())));
          break;
        case 0x54: // BINSTRING (Python 2 str): kept as text, byte for byte
          this.push(latin1.decode(this.take(this.i32())));
          break;
        case 0x55: // SHORT_BINSTRING
          this.push(latin1.decode(this.take(this.u8())));
          break;
        case 0x42: // BINBYTES
          this.push(Uint8Array.from(this.take(this.u32())));
          break;
        case 0x43: // SHORT_BINBYTES
          this.push(Uint8Array.from(this.take(this.u8())));
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          this.push(Uint8Array.from(this.take(this.u64())));
          break;

        case 0x7d: // EMPTY_DICT
          this.push(new PickleDict());
          break;
        case 0x5d: // EMPTY_LIST
          this.push([]);
          break;
        case 0x29: // EMPTY_TUPLE
          this.push(new PickleTuple([]));
          break;
        case 0x8f: // EMPTY_SET
          this.push(new PickleSet([]));
          break;
        case 0x74: // TUPLE
          this.push(new PickleTuple(this.popMark()));
          break;
        case 0x85: // TUPLE1
          this.push(new PickleTuple([this.pop()]));
          break;
        case 0x86: {
          // TUPLE2
          const second = this.pop();
          this.push(new PickleTuple([this.pop(), second]));
          break;
        }
        case 0x87: {
          // TUPLE3
          const third = this.pop();
          const second = this.pop();
          this.push(new PickleTuple([this.pop(), second, third]));
          break;
        }
        case 0x6c: // LIST
          this.push(this.popMark());
          break;
        case 0x64: {
          // DICT
          const dict = new PickleDict();
          this.setItems(dict, this.popMark());
          this.push(dict);
          break;
        }
        case 0x91: // FROZENSET
          this.push(new PickleSet(this.popMark()));
          break;
        case 0x61: {
          // APPEND
          const value = this.pop();
          this.appendTo(this.top(), [value]);
          break;
        }
        case 0x65: {
          // APPENDS
          const values = this.popMark();
          this.appendTo(this.top(), values);
          break;
        }
        case 0x73: {
          // SETITEM
          const value = this.pop();
          const key = this.pop();
          this.setItems(this.top(), [key, value]);
          break;
        }
        case 0x75: {
          // SETITEMS
          const pairs = this.popMark();
          this.setItems(this.top(), pairs);
          break;
        }
        case 0x90: {
          // ADDITEMS
          const values = this.popMark();
          const set = this.top();
          if (!(set instanceof PickleSet)) this.fail(`ADDITEMS at byte ${at} adds to ${typeName(set)}`);
          for (const value of values) set.items.push(value);
          break;
        }

        case 0x71: // BINPUT
          this.memo.set(this.u8(), this.top());
          break;
        case 0x72: // LONG_BINPUT
          this.memo.set(this.u32(), this.top());
          break;
        case 0x70: // PUT
          this.memo.set(this.index(RestrictedUnpickler.integer(BigInt(this.decimalLine(at))), "a memo index"), this.top());
          break;
        case 0x94: // MEMOIZE
          this.memo.set(this.memo.size, this.top());
          break;
        case 0x68: // BINGET
          this.push(this.memoGet(this.u8(), at));
          break;
        case 0x6a: // LONG_BINGET
          this.push(this.memoGet(this.u32(), at));
          break;
        case 0x67: // GET
          this.push(this.memoGet(Number(this.decimalLine(at)), at));
          break;

        case 0x63: {
          // GLOBAL: "module\nname\n", checked before anything uses it
          const module = this.line();
          this.push(this.global(module, this.line()));
          break;
        }
        case 0x93: {
          // STACK_GLOBAL
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== "string" || typeof name !== "string") this.fail(`STACK_GLOBAL at byte ${at} names ${typeName(module)}.${typeName(name)}`);
          this.push(this.global(module, name));
          break;
        }
        case 0x69: {
          // INST: "module\nname\n" then the arguments since MARK
          const module = this.line();
          const callee = this.global(module, this.line());
          this.push(this.call(callee, new PickleTuple(this.popMark())));
          break;
        }
        case 0x6f: {
          // OBJ: class and arguments since MARK
          const [callee, ...args] = this.popMark();
          this.push(this.call(callee ?? null, new PickleTuple(args)));
          break;
        }
        case 0x52: {
          // REDUCE
          const args = this.pop();
          this.push(this.call(this.pop(), args));
          break;
        }
        case 0x81: {
          // NEWOBJ
          const args = this.pop();
          this.push(this.call(this.pop(), args));
          break;
        }
        case 0x92: {
          // NEWOBJ_EX: keyword arguments are not used by anything allowed
          this.pop();
          const args = this.pop();
          this.push(this.call(this.pop(), args));
          break;
        }
        case 0x62: {
          // BUILD: the state of an OrderedDict (its _metadata), a tensor or an opaque object is not needed
          const state = this.pop();
          const target = this.top();
          if (!(target instanceof PickleDict || target instanceof PickleTensor || target instanceof PickleOpaque)) {
            this.fail(`BUILD at byte ${at} sets the state of ${typeName(target)} to ${typeName(state)}`);
          }
          break;
        }
        case 0x51: // BINPERSID
          this.push(this.persistentLoad(this.pop()));
          break;
        case 0x50: // PERSID
          this.fail(`a text persistent id "${this.line()}" is not a torch storage reference`);
          break;

        default:
          this.fail(
            `opcode 0x${opcode.toString(16).padStart(2, "0")}${OPCODE_NAMES[opcode] ? ` (${OPCODE_NAMES[opcode]})` : ""} at byte ${at} is not one torch.save writes`,
          );
      }
    }
  }

  private decimalLine(at: number): string {
    const text = this.line();
    if (!/^\d+$/.test(text)) this.fail(`a memo index at byte ${at} is "${text}"`);
    return text;
  }

  private memoGet(index: number, at: number): PickleValue {
    if (!this.memo.has(index)) this.fail(`it reads memo slot ${index} at byte ${at} before writing it`);
    return this.memo.get(index) as PickleValue;
  }

  private appendTo(target: PickleValue, values: PickleValue[]): void {
    if (target instanceof PickleOpaque) return;
    if (!Array.isArray(target)) this.fail(`it appends to ${typeName(target)}`);
    for (const value of values) target.push(value);
  }

  private setItems(target: PickleValue, pairs: PickleValue[]): void {
    if (target instanceof PickleOpaque) return;
    if (!(target instanceof PickleDict)) this.fail(`it sets items on ${typeName(target)}`);
    if (pairs.length % 2 !== 0) this.fail("it sets a key without a value");
    for (let i = 0; i < pairs.length; i += 2) target.entries.set(pairs[i], pairs[i + 1]);
  }
}

/**
 * Reads a pickle without running anything. `file` and `source` (the entry's name, e.g. "archive/data.pkl") name
 * it in errors; a global outside the allowlist is refused by name as soon as it is read.
 */
export function unpickle(bytes: Uint8Array, file: string, source: string): PickleValue {
  return new RestrictedUnpickler(bytes, file, source).run();
}
