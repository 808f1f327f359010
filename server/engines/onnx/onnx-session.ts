/**
 * One onnxruntime session with what the pipeline needs on top: the declared dtypes and shapes of its
 * inputs and outputs, float16 converted at the boundary, and the time spent inside onnxruntime.
 */
import { float16ToFloat32, float32ToFloat16 } from "./float16.ts";
import type { ThreadTensor, ThreadValueMetadata } from "./onnx-thread-protocol.ts";
import { ThreadSession } from "./onnx-thread.ts";

/** onnxruntime's SessionOptions, as much of them as Maskflow sets: plain data, sent to the onnxruntime thread. */
interface SessionOptions {
  readonly executionProviders: readonly string[];
  readonly intraOpNumThreads: number;
  readonly interOpNumThreads: number;
  readonly graphOptimizationLevel: SessionTuning["optimization"];
  readonly enableCpuMemArena: boolean;
  readonly enableMemPattern: boolean;
  readonly logSeverityLevel: number;
  readonly extra: { readonly session: Readonly<Record<string, string>> };
}

export type DeviceName = "cpu" | "cuda";

export interface ValueSpec {
  readonly name: string;
  /** onnxruntime's element type name: "float32", "float16", "int64", "int32", … */
  readonly type: string;
  /** Declared dims: numbers where fixed, names where symbolic. */
  readonly shape: readonly (number | string)[];
}

export type FeedValue =
  | { readonly kind: "float"; readonly data: Float32Array; readonly dims: readonly number[] }
  | { readonly kind: "int"; readonly data: readonly number[]; readonly dims: readonly number[] };

/**
 * How onnxruntime holds memory for a session. The defaults are what the real-size measurements chose
 * (README, "Real-size models"); the benchmark varies them one at a time.
 */
export interface SessionTuning {
  /** onnxruntime's CPU arena: keeps freed blocks for reuse instead of returning them. */
  readonly cpuMemArena: boolean;
  /** Plans one block for all of a run's intermediates from the previous run's shapes. */
  readonly memPattern: boolean;
  /** Weights re-laid out for the matrix kernels at load (a second copy while the original is alive). */
  readonly prepacking: boolean;
  readonly optimization: "disabled" | "basic" | "extended" | "all";
}

/**
 * No arena: with it a real-size pipeline kept every session's peak buffers for good (idle RSS 13.3 GB after a
 * 512² job, 5.0 GB without, at the same step time). Prepacking and the memory pattern cost little memory.
 */
export const DEFAULT_SESSION_TUNING: SessionTuning = { cpuMemArena: false, memPattern: true, prepacking: true, optimization: "all" };

export class ModelLoadError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = "ModelLoadError";
  }
}

export interface OnnxSessionOptions {
  readonly device: DeviceName;
  readonly threads: number;
  readonly tuning?: Partial<SessionTuning>;
  /**
   * false: the session is opened for each run and closed after it, so its weights and buffers are not held
   * while other sessions work (the text encoder and VAE while a real-size UNet denoises). Runs that overlap
   * share one opening.
   */
  readonly resident?: boolean;
}

export class OnnxSession {
  readonly inputs: ReadonlyMap<string, ValueSpec>;
  readonly outputs: ReadonlyMap<string, ValueSpec>;
  /**
   * Milliseconds spent inside onnxruntime for runs since creation (for the pipeline-overhead benchmark):
   * the runs themselves, and a non-resident session's reopening for them.
   */
  runMs = 0;
  /** The part of runMs spent reopening the session (non-resident sessions only). */
  reloadMs = 0;
  #session: Promise<ThreadSession> | undefined;
  #users = 0;

  private constructor(
    readonly file: string,
    private readonly path: string,
    private readonly sessionOptions: SessionOptions,
    private readonly device: DeviceName,
    readonly resident: boolean,
    session: ThreadSession,
  ) {
    this.inputs = describe(session.inputMetadata);
    this.outputs = describe(session.outputMetadata);
    if (resident) this.#session = Promise.resolve(session);
  }

  static async create(file: string, label: string, options: OnnxSessionOptions): Promise<OnnxSession> {
    const tuning = { ...DEFAULT_SESSION_TUNING, ...options.tuning };
    const sessionOptions: SessionOptions = {
      executionProviders: options.device === "cuda" ? ["cuda", "cpu"] : ["cpu"],
      intraOpNumThreads: options.threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: tuning.optimization,
      enableCpuMemArena: tuning.cpuMemArena,
      enableMemPattern: tuning.memPattern,
      logSeverityLevel: 4,
      extra: { session: { disable_prepacking: tuning.prepacking ? "0" : "1" } },
    };
    const resident = options.resident ?? true;
    // A non-resident session is still opened once here: a broken file fails the load, not a later job.
    const session = await open(file, label, sessionOptions, options.device);
    const created = new OnnxSession(label, file, sessionOptions, options.device, resident, session);
    if (!resident) await session.release();
    return created;
  }

  /** Runs with float32 in and out whatever the model's own float type; int inputs follow the declared type. */
  async run(feeds: Readonly<Record<string, FeedValue>>, outputNames?: readonly string[]): Promise<Record<string, { data: Float32Array; dims: readonly number[] }>> {
    const tensors: Record<string, ThreadTensor> = {};
    for (const [name, value] of Object.entries(feeds)) {
      const spec = this.inputs.get(name);
      if (!spec) throw new Error(`${this.file}: has no input "${name}"`);
      tensors[name] = toTensor(spec, value);
    }
    const started = performance.now();
    const session = await this.#acquire();
    try {
      const results = outputNames ? await session.run(tensors, [...outputNames]) : await session.run(tensors);
      this.runMs += performance.now() - started;
      const out: Record<string, { data: Float32Array; dims: readonly number[] }> = {};
      for (const [name, tensor] of Object.entries(results)) {
        out[name] = { data: toFloat32(tensor), dims: tensor.dims };
      }
      return out;
    } finally {
      await this.#return();
    }
  }

  async release(): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    if (session) await (await session).release();
  }

  #acquire(): Promise<ThreadSession> {
    this.#users++;
    if (!this.#session) {
      const started = performance.now();
      this.#session = open(this.path, this.file, this.sessionOptions, this.device);
      this.#session.then(() => (this.reloadMs += performance.now() - started)).catch(() => {});
      // A failed opening is not kept: the next run tries again.
      this.#session.catch(() => {
        this.#session = undefined;
      });
    }
    return this.#session;
  }

  async #return(): Promise<void> {
    this.#users--;
    if (this.resident || this.#users > 0 || !this.#session) return;
    const session = this.#session;
    this.#session = undefined;
    await (await session).release();
  }
}

async function open(file: string, label: string, sessionOptions: SessionOptions, device: DeviceName): Promise<ThreadSession> {
  try {
    return await ThreadSession.open(file, sessionOptions as unknown as Readonly<Record<string, unknown>>);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (device === "cuda" && /cuda|provider/i.test(message)) {
      throw new ModelLoadError(
        label,
        "the CUDA execution provider is not installed (it needs CUDA 12 and cuDNN 9): fetch its binaries with " +
          "`ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js` (see README) or use --device cpu",
      );
    }
    throw new ModelLoadError(label, `onnxruntime could not load it (missing, truncated or not an ONNX model?): ${message}`);
  }
}

function describe(metadata: readonly ThreadValueMetadata[]): Map<string, ValueSpec> {
  const specs = new Map<string, ValueSpec>();
  for (const value of metadata) {
    if (value.isTensor) specs.set(value.name, { name: value.name, type: value.type, shape: value.shape });
    else specs.set(value.name, { name: value.name, type: "non-tensor", shape: [] });
  }
  return specs;
}

function toTensor(spec: ValueSpec, value: FeedValue): ThreadTensor {
  const dims = [...value.dims];
  const tensor = (type: string, data: ThreadTensor["data"]): ThreadTensor => ({ type, data, dims });
  if (value.kind === "float") {
    if (spec.type === "float16") return tensor("float16", float32ToFloat16(value.data));
    if (spec.type === "float32") return tensor("float32", value.data);
    if (spec.type === "int64") return tensor("int64", BigInt64Array.from(value.data, (v) => BigInt(Math.trunc(v))));
    if (spec.type === "int32") return tensor("int32", Int32Array.from(value.data, (v) => Math.trunc(v)));
    if (spec.type === "float64") return tensor("float64", Float64Array.from(value.data));
  } else {
    if (spec.type === "int64") return tensor("int64", BigInt64Array.from(value.data, (v) => BigInt(v)));
    if (spec.type === "int32") return tensor("int32", Int32Array.from(value.data));
    if (spec.type === "float32") return tensor("float32", Float32Array.from(value.data));
    if (spec.type === "float16") return tensor("float16", float32ToFloat16(Float32Array.from(value.data)));
  }
  throw new Error(`input "${spec.name}" has type ${spec.type}, which Maskflow cannot feed`);
}

function toFloat32(tensor: ThreadTensor): Float32Array {
  const data = tensor.data;
  // The thread sent a copy of its own: no second copy.
  if (data instanceof Float32Array) return data;
  if (tensor.type === "float16" && data instanceof Uint16Array) return float16ToFloat32(data);
  if (data instanceof Float64Array || data instanceof Int32Array) return Float32Array.from(data);
  throw new Error(`output of type ${tensor.type} is not a float tensor`);
}
