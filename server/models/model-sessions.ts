/**
 * Whether a model folder opens: the engine's own loader creates the four onnxruntime sessions and checks
 * the inputs and outputs the pipeline feeds and reads, so a folder that passes here loads in `serve` and `run`.
 */
import path from "node:path";
import { ModelLoadError } from "../engines/onnx/onnx-session.ts";
import { loadSdModel } from "../engines/onnx/sd-model.ts";
import type { FolderProblem } from "./model-layout.ts";

/** The problem the loader stops at (it stops at the first), or none when every session opens; sessions are released. */
export async function checkModelSessions(modelDir: string): Promise<FolderProblem[]> {
  const root = path.resolve(modelDir);
  try {
    // The export's own files are checked, not an fp32 copy: verifying writes nothing into the folder.
    const model = await loadSdModel(root, { device: "cpu", threads: 1, fp16OnCpu: "keep" });
    await model.release();
    return [];
  } catch (error) {
    if (error instanceof ModelLoadError) {
      const detail = error.message.startsWith(`${error.file}: `) ? error.message.slice(error.file.length + 2) : error.message;
      const relative = path.relative(root, error.file).split(path.sep).join("/");
      return [{ path: relative && !relative.startsWith("..") ? relative : ".", detail }];
    }
    return [{ path: ".", detail: `the engine could not load it: ${error instanceof Error ? error.message : String(error)}` }];
  }
}
