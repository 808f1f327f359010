import { isBuildPhase } from "../../server/models/checkpoint/built-model-cache.ts";
import { resolveModelsDir } from "../../server/models/models-folder.ts";
import { CHECKPOINTS_FOLDER, resolveModelName } from "../../server/models/model-names.ts";
import { defineNode } from "../node-definition.ts";
import { plainRecipe } from "../../server/models/checkpoint/model-recipe.ts";

/**
 * ComfyUI's CheckpointLoaderSimple for Maskflow: names a model by what the user dropped into the models folder
 * (a .safetensors/.ckpt checkpoint in checkpoints/, or a model folder) and hands on a MODEL. A checkpoint's ONNX
 * graphs are built here on first use, with the build's progress on this node, and reused by content afterwards.
 */
export const CheckpointLoaderNode = defineNode({
  type: "CheckpointLoader",
  category: "model",
  displayName: "Load Checkpoint",
  description:
    `An SD 1.x model: a .safetensors or .ckpt file in the models folder's ${CHECKPOINTS_FOLDER}/ subfolder (single-file A1111 ` +
    "layout) or a model folder there (an ONNX export, an import, a diffusers folder). A checkpoint is built into ONNX graphs " +
    "once (minutes at full size, progress on this node), then reused.",
  inputs: {
    checkpoint: {
      type: "STRING",
      widget: "checkpoint",
      default: "",
      description: `A checkpoint file in ${CHECKPOINTS_FOLDER}/ or a model folder's name, as the list shows.`,
    },
  },
  outputs: { model: { type: "MODEL", description: "The model, for Inpaint's model input." } },
  check({ checkpoint }) {
    return typeof checkpoint === "string" && checkpoint.trim() === ""
      ? [{ input: "checkpoint", message: `choose a checkpoint: a .safetensors or .ckpt file in the models folder's ${CHECKPOINTS_FOLDER}/ subfolder, or a model folder` }]
      : [];
  },
  async run({ checkpoint }, ctx) {
    const engine = ctx.engines.local;
    const modelsDir = engine?.modelsDir ?? resolveModelsDir(undefined);
    const source = await resolveModelName(modelsDir, checkpoint, "checkpoint");
    if (engine?.prepare) {
      await engine.prepare(source, (done, total, phase) =>
        ctx.progress({ value: done, max: total, label: isBuildPhase(phase) ? phase : "preparing model" }),
      );
    }
    return { model: plainRecipe(source) };
  },
});
