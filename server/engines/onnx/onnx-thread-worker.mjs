// The file the onnxruntime thread starts from (see onnx-thread.ts). Node runs no .ts file in a worker by
// itself, so this plain module registers tsx in the thread first and then starts the TypeScript host.
import { register } from "tsx/esm/api";

register();
await import("./onnx-thread-host.ts");
