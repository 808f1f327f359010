import { runCompute } from "../../server/compute/compute-pool.ts";
import { defineNode, type ImageRef } from "../node-definition.ts";
import { asPlainBytes, toSharp } from "./sharp-conversions.ts";

/** Writes each image of the batch as a PNG into the output folder, carrying the workflow that made it. */
export const SaveImageNode = defineNode({
  type: "SaveImage",
  category: "image",
  displayName: "Save Image",
  description:
    "Saves the images as PNG files in the output folder and shows them. Each PNG carries the workflow " +
    "in a tEXt chunk named \"workflow\": drop it on the editor to get the graph back.",
  isOutput: true,
  inputs: {
    images: { type: "IMAGE" },
    filename_prefix: { type: "STRING", widget: "text", default: "maskflow", description: "Start of the file names." },
  },
  outputs: {},
  async run({ images, filename_prefix }, ctx) {
    const refs: ImageRef[] = [];
    for (const image of images) {
      let png = asPlainBytes(await toSharp(image).png().toBuffer());
      // png-workflow-chunk.ts on a compute worker: a workflow with big literals costs seconds of JSON and CRCs.
      if (ctx.workflow !== undefined) png = await runCompute("embedWorkflow", { png, workflow: ctx.workflow }, ctx.signal);
      refs.push(await ctx.storage.writeImage(png, { prefix: filename_prefix, extension: "png", type: "output" }));
    }
    ctx.show(refs);
    return {};
  },
});
