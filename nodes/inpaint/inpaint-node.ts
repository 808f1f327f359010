import type { InpaintResult } from "../../server/engines/onnx/inpaint-pipeline.ts";
import { defineNode } from "../node-definition.ts";
import type { RgbImage } from "../socket-types.ts";
import { pasteBack } from "./paste-back.ts";

/** Stable Diffusion inpainting: repaints the white part of the mask from the prompt. */
export const InpaintNode = defineNode({
  type: "Inpaint",
  category: "inpaint",
  description:
    "Repaints the white part of the mask from the prompt with Stable Diffusion 1.5 inpainting, on the local " +
    "ONNX model (backend local) or on Segmind's servers (backend segmind). By default the pixels outside the " +
    "mask are the original ones, blended across mask_blur pixels inside it.",
  inputs: {
    image: { type: "IMAGE" },
    mask: { type: "MASK" },
    prompt: { type: "PROMPT" },
    scheduler: { type: "SCHEDULER" },
    backend: { type: "STRING", widget: "combo", options: ["local", "segmind"], default: "local" },
    model: { type: "STRING", widget: "text", default: "", description: "Local model folder; empty: the server's (--model, MASKFLOW_MODEL_DIR)." },
    samples: { type: "INT", widget: "number", default: 1, min: 1, max: 4, step: 1 },
    width: { type: "INT", widget: "number", default: 512, min: 64, max: 2048, step: 8 },
    height: { type: "INT", widget: "number", default: 512, min: 64, max: 2048, step: 8 },
    paste_back: { type: "BOOLEAN", widget: "toggle", default: true, description: "Keep the original pixels outside the mask." },
    mask_blur: { type: "INT", widget: "number", default: 4, min: 0, max: 64, step: 1, description: "Pixels of blend inside the mask edge." },
  },
  outputs: { images: { type: "IMAGE" } },
  async run(inputs, ctx) {
    const { image: batch, mask, prompt, scheduler } = inputs;
    const engine = ctx.engines.local;
    if (inputs.backend === "segmind") {
      throw new Error('backend "segmind" is not available in this build; use backend "local"');
    }
    if (!engine) throw new Error("the local engine is not available in this process");
    const images: RgbImage[] = [];
    for (let index = 0; index < batch.length; index++) {
      const source = batch[index];
      const result: InpaintResult = await engine.inpaint(
        {
          image: source,
          mask,
          prompt: prompt.positive,
          negativePrompt: prompt.negative,
          scheduler: scheduler.name,
          steps: scheduler.steps,
          guidance: scheduler.guidance,
          strength: scheduler.strength,
          seed: scheduler.seed,
          samples: inputs.samples,
          width: inputs.width,
          height: inputs.height,
        },
        {
          modelDir: inputs.model || undefined,
          signal: ctx.signal,
          onStep: (step, total, preview) => ctx.progress({ value: index * total + step, max: batch.length * total, preview }),
          onNote: (message) => ctx.logger.warn(`node ${ctx.nodeId}: ${message}`),
        },
      );
      for (const output of result.images) {
        images.push(inputs.paste_back ? await pasteBack(source, output, mask, inputs.mask_blur) : output);
      }
    }
    ctx.report({ seed: scheduler.seed.toString() });
    return { images };
  },
});
