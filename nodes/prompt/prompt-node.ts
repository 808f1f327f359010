import { defineNode } from "../node-definition.ts";

/** Positive and negative text together, as the Segmind API and diffusers take them. */
export const PromptNode = defineNode({
  type: "Prompt",
  category: "prompt",
  description: "What to paint into the mask (positive) and what to keep out of it (negative).",
  inputs: {
    positive: { type: "STRING", widget: "multiline", default: "" },
    negative: { type: "STRING", widget: "multiline", default: "" },
  },
  outputs: { prompt: { type: "PROMPT" } },
  async run({ positive, negative }) {
    return { prompt: { positive, negative } };
  },
});
