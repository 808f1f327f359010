import type { InpaintRequest, InpaintResult } from "../../server/engines/onnx/inpaint-pipeline.ts";
import type { LocalInpaintEngine } from "../../server/engines/onnx/onnx-engine.ts";

/** The real local engine, noting what each call asked for and the UNet input shape it ran. */
export function recordingEngine(engine: LocalInpaintEngine) {
  const calls: Array<{ request: InpaintRequest; unetSampleDims: readonly number[] }> = [];
  const recorded: LocalInpaintEngine = {
    async inpaint(request, options) {
      const result: InpaintResult = await engine.inpaint(request, options);
      calls.push({ request, unetSampleDims: result.unetSampleDims });
      return result;
    },
  };
  return { engine: recorded, calls };
}
