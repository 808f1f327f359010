// The thread an fp16 → fp32 conversion runs on (see fp32-cache.ts). Node runs no .ts file in a worker by
// itself, so this plain module registers tsx in the thread first, as onnx-thread-worker.mjs does.
import { parentPort, workerData } from "node:worker_threads";
import { register } from "tsx/esm/api";

register();
const { convertFp16ToFp32 } = await import("./fp16-to-fp32.ts");
try {
  const result = await convertFp16ToFp32(workerData.source, workerData.target);
  parentPort.postMessage({ ok: true, result });
} catch (error) {
  parentPort.postMessage({ ok: false, message: error instanceof Error ? error.message : String(error) });
}
