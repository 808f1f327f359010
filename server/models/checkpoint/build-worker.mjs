// The thread a checkpoint build runs on (see built-model-cache.ts): minutes of dtype conversion, transposes and
// writes that must not hold the server's event loop. Node runs no .ts file in a worker by itself, so this plain
// module registers tsx in the thread first, as onnx-thread-worker.mjs does.
import { parentPort, workerData } from "node:worker_threads";
import { register } from "tsx/esm/api";

register();
const { runBuildJob } = await import("./build-job.ts");
const controller = new AbortController();
parentPort.on("message", (message) => {
  if (message === "abort") controller.abort(new Error("the build was cancelled"));
});
try {
  const result = await runBuildJob(workerData, (progress) => parentPort.postMessage({ type: "progress", progress }), controller.signal);
  parentPort.postMessage({ type: "done", result });
} catch (error) {
  parentPort.postMessage({ type: "error", name: error?.name, message: error instanceof Error ? error.message : String(error) });
}
