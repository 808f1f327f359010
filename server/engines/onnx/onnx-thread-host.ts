/**
 * The onnxruntime thread's side (see onnx-thread.ts): it holds every session of the process and answers
 * the event loop's open, run and release requests one at a time. onnxruntime-node opens sessions and runs
 * them synchronously on the calling thread (its run() only defers to setImmediate), so this thread is the
 * only one that ever calls into it.
 */
import { parentPort } from "node:worker_threads";
import * as ort from "onnxruntime-node";
import type { HostReply, HostRequest, ThreadTensor, ThreadValueMetadata } from "./onnx-thread-protocol.ts";

// Load failures are reported by Maskflow, naming the file; onnxruntime's own coloured log lines would repeat them.
ort.env.logLevel = "fatal";

const sessions = new Map<number, ort.InferenceSession>();
let nextHandle = 1;

function metadataOf(values: readonly ort.InferenceSession.ValueMetadata[]): ThreadValueMetadata[] {
  return values.map((value) =>
    value.isTensor ? { name: value.name, isTensor: true, type: value.type, shape: [...value.shape] } : { name: value.name, isTensor: false },
  );
}

/** The output's values copied out of onnxruntime's buffer (the tensor is disposed), in a buffer of their own to move. */
function ownCopy(tensor: ort.Tensor): ThreadTensor {
  const data = tensor.data;
  if (!ArrayBuffer.isView(data)) throw new Error(`output of type ${tensor.type} is not a numeric tensor`);
  const copy = (data as unknown as { slice(): ThreadTensor["data"] }).slice();
  return { type: tensor.type, data: copy, dims: [...tensor.dims] };
}

async function answer(request: HostRequest): Promise<{ reply: HostReply; transfer: ArrayBuffer[] }> {
  switch (request.op) {
    case "open": {
      const session = await ort.InferenceSession.create(request.file, request.options as ort.InferenceSession.SessionOptions);
      const handle = nextHandle++;
      sessions.set(handle, session);
      return {
        reply: { id: request.id, ok: true, op: "open", handle, inputs: metadataOf(session.inputMetadata), outputs: metadataOf(session.outputMetadata) },
        transfer: [],
      };
    }
    case "run": {
      const session = sessions.get(request.handle);
      if (!session) throw new Error("the session was released");
      const feeds: Record<string, ort.Tensor> = {};
      for (const [name, value] of Object.entries(request.feeds)) {
        feeds[name] = new ort.Tensor(value.type as ort.Tensor.Type, value.data as ort.Tensor.DataType, [...value.dims]);
      }
      const results = request.outputNames ? await session.run(feeds, [...request.outputNames]) : await session.run(feeds);
      const outputs: Record<string, ThreadTensor> = {};
      for (const [name, tensor] of Object.entries(results)) {
        outputs[name] = ownCopy(tensor);
        tensor.dispose();
      }
      return {
        reply: { id: request.id, ok: true, op: "run", outputs },
        transfer: Object.values(outputs).map((output) => output.data.buffer as ArrayBuffer),
      };
    }
    case "release": {
      const session = sessions.get(request.handle);
      sessions.delete(request.handle);
      await session?.release();
      return { reply: { id: request.id, ok: true, op: "release" }, transfer: [] };
    }
  }
}

const port = parentPort;
if (!port) throw new Error("onnx-thread-host.ts runs on a worker thread started by onnx-thread.ts");
port.on("message", (request: HostRequest) => {
  answer(request).then(
    ({ reply, transfer }) => port.postMessage(reply, transfer),
    (error: unknown) => port.postMessage({ id: request.id, ok: false, message: error instanceof Error ? error.message : String(error) } satisfies HostReply),
  );
});
