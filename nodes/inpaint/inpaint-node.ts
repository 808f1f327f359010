import type { LatentMaskedContent } from "../../server/engines/onnx/inpaint-pipeline.ts";
import { isConversionPhase } from "../../server/engines/onnx/fp32-cache.ts";
import { WARM_UP_PHASE } from "../../server/engines/onnx/unet-warm-up.ts";
import { isBuildPhase } from "../../server/models/checkpoint/built-model-cache.ts";
import { VAE_TILING_MODES, type VaeTiling } from "../../server/engines/onnx/vae-tiling.ts";
import { SEGMIND_IMAGE_SIZES } from "../../server/engines/segmind/segmind-request.ts";
import { teleaInpaint } from "../fill/telea-inpaint.ts";
import { toSharp } from "../image/sharp-conversions.ts";
import { defineNode, type InputProblem, type InputSpecs, type InputsOf, type NodeContext } from "../node-definition.ts";
import type { Mask, ModelRef, RgbImage } from "../socket-types.ts";
import { resolveModelName } from "../../server/models/model-names.ts";
import { plainRecipe } from "../../server/models/checkpoint/model-recipe.ts";
import { resolveModelsDir } from "../../server/models/models-folder.ts";
import { seedForJson } from "../sampling/seed-for-json.ts";
import { pasteBack } from "./paste-back.ts";
import { inpaintOnSegmind } from "./segmind-backend.ts";

const INPAINT_INPUTS = {
  image: { type: "IMAGE" },
  mask: { type: "MASK" },
  prompt: { type: "PROMPT" },
  scheduler: { type: "SCHEDULER" },
  backend: { type: "STRING", widget: "combo", options: ["local", "segmind"], default: "local" },
  model: {
    type: "MODEL",
    optional: true,
    description:
      "The local model, from a Load Checkpoint node; unlinked: the server's (--model, MASKFLOW_MODEL_DIR). Older workflows' text " +
      "here names a model folder in the models folder.",
  },
  samples: { type: "INT", widget: "number", default: 1, min: 1, max: 4, step: 1 },
  width: { type: "INT", widget: "number", default: 512, min: 64, max: 2048, step: 8 },
  height: { type: "INT", widget: "number", default: 512, min: 64, max: 2048, step: 8 },
  paste_back: { type: "BOOLEAN", widget: "toggle", default: true, description: "Keep the original pixels outside the mask." },
  mask_blur: { type: "INT", widget: "number", default: 4, min: 0, max: 64, step: 1, description: "Pixels of blend inside the mask edge." },
  color_match: {
    type: "BOOLEAN",
    widget: "toggle",
    default: true,
    description:
      "With paste_back: before blending, give the repainted area the original's colours as measured on a ring just outside the mask " +
      "(mean and spread per channel in CIE Lab), so no colour step shows at the seam.",
  },
  masked_content: {
    type: "STRING",
    widget: "combo",
    options: ["original", "fill", "latent noise", "latent nothing"],
    default: "original",
    description:
      "What the masked area starts from when strength < 1: the picture itself, a classical fill of the hole (removes the object first), fresh noise, or nothing.",
  },
  soft_mask: {
    type: "BOOLEAN",
    widget: "toggle",
    default: false,
    description:
      "Soft inpainting (differential diffusion): grey mask values say how much each place may change (0 keeps, 1 repaints, 0.5 half way), " +
      "instead of a yes/no at 50 %. Local backend only. Paste-back then keeps only the mask's 0 pixels.",
  },
  vae_tiling: {
    type: "STRING",
    widget: "combo",
    options: VAE_TILING_MODES,
    default: "auto",
    description:
      "VAE encode and decode in overlapping 512 px tiles, which bounds their memory at large sizes (the result differs slightly " +
      "near tile edges): auto from 1024 px on either side (twice the model's own size), on above one tile, off never. Local backend only.",
  },
} as const satisfies InputSpecs;

/** Stable Diffusion inpainting: repaints the white part of the mask from the prompt. */
export const InpaintNode = defineNode({
  type: "Inpaint",
  category: "inpaint",
  description:
    "Repaints the white part of the mask from the prompt with Stable Diffusion 1.5 inpainting, on the local " +
    "ONNX model (backend local) or on Segmind's servers (backend segmind). By default the pixels outside the " +
    "mask are the original ones, blended across mask_blur pixels inside it.",
  inputs: INPAINT_INPUTS,
  outputs: { images: { type: "IMAGE" } },
  check({ backend, width, height, soft_mask, vae_tiling }) {
    const problems: InputProblem<"width" | "height" | "soft_mask" | "vae_tiling">[] = [];
    if (backend === "segmind" && soft_mask === true) problems.push({ input: "soft_mask", message: SOFT_MASK_ON_SEGMIND });
    if (backend === "segmind" && vae_tiling !== undefined && vae_tiling !== "auto") problems.push({ input: "vae_tiling", message: VAE_TILING_ON_SEGMIND });
    for (const [input, size] of [["width", width], ["height", height]] as const) {
      if (size === undefined) continue;
      if (backend === "segmind" && !(SEGMIND_IMAGE_SIZES as readonly number[]).includes(size)) {
        problems.push({ input, message: `is ${size}; backend "segmind" takes ${SEGMIND_IMAGE_SIZES.join(" or ")}` });
      } else if (size % 8 !== 0) {
        // The VAE works on 8×8 pixel blocks: the latent is a whole number of them.
        const below = Math.max(64, size - (size % 8));
        problems.push({ input, message: `is ${size}; it must be a multiple of 8, e.g. ${below} or ${below + 8}` });
      }
    }
    return problems;
  },
  async run(inputs, ctx) {
    const { mask, scheduler } = inputs;
    // "fill": the hole is filled from its surroundings first, so a strength below 1 keeps no trace of what was there.
    const sources = inputs.masked_content === "fill" ? inputs.image.map((picture) => fillHole(picture, mask)) : inputs.image;
    // A linked backend is not seen by check(): the same refusal, before any picture is sent.
    if (inputs.backend === "segmind" && inputs.soft_mask) throw new Error(`Inpaint: input \`soft_mask\` ${SOFT_MASK_ON_SEGMIND}`);
    if (inputs.backend === "segmind" && inputs.vae_tiling !== "auto") throw new Error(`Inpaint: input \`vae_tiling\` ${VAE_TILING_ON_SEGMIND}`);
    const paint = inputs.backend === "segmind" ? paintOnSegmind : paintLocally;
    const images: RgbImage[] = [];
    for (let index = 0; index < sources.length; index++) {
      for (const output of await paint(inputs, ctx, sources[index], { index, count: sources.length })) {
        images.push(inputs.paste_back ? await pasteBack(inputs.image[index], output, mask, inputs.mask_blur, { soft: inputs.soft_mask, colorMatch: inputs.color_match, signal: ctx.signal }) : output);
      }
    }
    // Shown on the node itself (the editor puts pictures where they are made), kept in temp/.
    const previews = [];
    for (const image of images) {
      previews.push(await ctx.storage.writeImage(await toSharp(image).png({ compressionLevel: 1 }).toBuffer(), { prefix: "inpaint", extension: "png", type: "temp" }));
    }
    ctx.show(previews);
    ctx.report({ seed: seedForJson(scheduler.seed) });
    return { images };
  },
});

const SOFT_MASK_ON_SEGMIND =
  'is true, but backend "segmind" has no soft inpainting (its API takes a black-and-white mask and repaints where it is white); ' +
  'use backend "local", or set soft_mask to false (a grey mask is then cut at 50 %)';

const VAE_TILING_ON_SEGMIND = 'is set, but backend "segmind" runs its VAE on its own servers; use backend "local", or leave vae_tiling at auto';

/** The classical fill works on the picture's own grid, so unlike the painters it cannot resize the mask. */
function fillHole(picture: RgbImage, mask: Mask): RgbImage {
  if (mask.width !== picture.width || mask.height !== picture.height) {
    throw new Error(
      `Inpaint: masked_content "fill" needs input \`mask\` (${mask.width}×${mask.height}) the size of input \`image\` (${picture.width}×${picture.height}); resize one, or choose another masked_content`,
    );
  }
  return teleaInpaint(picture, mask, 5);
}

type InpaintInputs = InputsOf<typeof INPAINT_INPUTS>;
type Painter = (inputs: InpaintInputs, ctx: NodeContext, source: RgbImage, place: { index: number; count: number }) => Promise<readonly RgbImage[]>;

/**
 * A linked MODEL's source, or (workflows from before the MODEL socket) a text naming a model in the models
 * folder; nothing: the server's model.
 */
async function localModelOf(model: ModelRef | string | undefined, modelsDir: string | undefined): Promise<ModelRef | undefined> {
  if (model === undefined || model === "") return undefined;
  if (typeof model !== "string") return model;
  return plainRecipe(await resolveModelName(modelsDir ?? resolveModelsDir(undefined), model, "model"));
}

const paintLocally: Painter = async (inputs, ctx, source, { index, count }) => {
  const engine = ctx.engines.local;
  if (!engine) throw new Error("the local engine is not available in this process");
  const { prompt, scheduler } = inputs;
  const result = await engine.inpaint(
    {
      image: source,
      mask: inputs.mask,
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
      maskedContent: inputs.masked_content === "fill" ? "original" : (inputs.masked_content as LatentMaskedContent),
      softMask: inputs.soft_mask,
      vaeTiling: inputs.vae_tiling as VaeTiling,
    },
    {
      model: await localModelOf(inputs.model, engine.modelsDir),
      signal: ctx.signal,
      // The first use of a model loads it (seconds for real weights): show its four sessions coming in, then the warm-up.
      onLoad: (loaded, total, part) => ctx.progress({ value: loaded, max: total, label: part === WARM_UP_PHASE || isConversionPhase(part) || isBuildPhase(part) ? part : "loading model" }),
      onStep: (step, total, preview) => ctx.progress({ value: index * total + step, max: count * total, preview }),
      onNote: (message) => ctx.logger.warn(`node ${ctx.nodeId}: ${message}`),
    },
  );
  return result.images;
};

const paintOnSegmind: Painter = async (inputs, ctx, source, { index, count }) => {
  const client = ctx.engines.segmind;
  if (!client) throw new Error("the Segmind backend is not available in this process");
  ctx.progress({ value: index, max: count });
  const { prompt, scheduler, mask, samples, width, height } = inputs;
  const result = await inpaintOnSegmind(
    client,
    { image: source, mask, prompt, scheduler, samples, width, height },
    { signal: ctx.signal, onRetry: (message) => ctx.logger.warn(`node ${ctx.nodeId}: ${message}`) },
  );
  if (result.remainingCredits !== undefined) ctx.report({ remaining_credits: result.remainingCredits });
  ctx.progress({ value: index + 1, max: count });
  return result.images;
};
