/** What the event loop and the onnxruntime thread say to each other (onnx-thread.ts, onnx-thread-host.ts). */

export type ThreadTensorData = Float32Array | Float64Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array | Int8Array;

/** A tensor as it crosses between the threads: onnxruntime's element type name, the values, the dims. */
export interface ThreadTensor {
  readonly type: string;
  readonly data: ThreadTensorData;
  readonly dims: readonly number[];
}

export type ThreadValueMetadata =
  | { readonly name: string; readonly isTensor: true; readonly type: string; readonly shape: readonly (number | string)[] }
  | { readonly name: string; readonly isTensor: false };

export type HostRequest =
  /** `options` is onnxruntime's SessionOptions: plain data, so it crosses as it is. */
  | { readonly id: number; readonly op: "open"; readonly file: string; readonly options: Readonly<Record<string, unknown>> }
  | { readonly id: number; readonly op: "run"; readonly handle: number; readonly feeds: Readonly<Record<string, ThreadTensor>>; readonly outputNames?: readonly string[] }
  | { readonly id: number; readonly op: "release"; readonly handle: number };

export type HostReply =
  | { readonly id: number; readonly ok: true; readonly op: "open"; readonly handle: number; readonly inputs: ThreadValueMetadata[]; readonly outputs: ThreadValueMetadata[] }
  | { readonly id: number; readonly ok: true; readonly op: "run"; readonly outputs: Record<string, ThreadTensor> }
  | { readonly id: number; readonly ok: true; readonly op: "release" }
  | { readonly id: number; readonly ok: false; readonly message: string };
