import type { InpaintRequest, InpaintResult } from "../../server/engines/onnx/inpaint-pipeline.ts";
import type { LocalInpaintEngine } from "../../server/engines/onnx/onnx-engine.ts";

/** The real local engine, noting what each call asked for and the UNet input shape it ran. */
export function recordingEngine(engine: LocalInpaintEngine) {
  const calls: Array<{ request: InpaintRequest; modelDir: string | undefined; unetSampleDims: readonly number[] }> = [];
  const recorded: LocalInpaintEngine = {
    async inpaint(request, options) {
      const result: InpaintResult = await engine.inpaint(request, options);
      calls.push({ request, modelDir: options.model?.checkpoint ?? options.modelDir, unetSampleDims: result.unetSampleDims });
      return result;
    },
    // A Load Checkpoint resolves names in the engine's models folder and prepares the model through it.
    modelsDir: engine.modelsDir,
    ...(engine.prepare ? { prepare: engine.prepare.bind(engine) } : {}),
  };
  return { engine: recorded, calls };
}
