import { defineNode, type InputProblem } from "../node-definition.ts";
import { MAX_PROMPT_CHARACTERS, promptLengthProblem } from "../../server/workflow/workflow-limits.ts";

/** Positive and negative text together, as the Segmind API and diffusers take them. */
export const PromptNode = defineNode({
  type: "Prompt",
  category: "prompt",
  description: `What to paint into the mask (positive) and what to keep out of it (negative); at most ${MAX_PROMPT_CHARACTERS.toLocaleString("en-US")} characters each.`,
  inputs: {
    positive: { type: "STRING", widget: "multiline", default: "" },
    negative: { type: "STRING", widget: "multiline", default: "" },
  },
  outputs: { prompt: { type: "PROMPT" } },
  // CLIP reads 77 tokens; a longer text only costs tokenizing, storing and sending it around.
  check(inputs) {
    const problems: InputProblem<"positive" | "negative">[] = [];
    for (const input of ["positive", "negative"] as const) {
      const text = inputs[input];
      const message = typeof text === "string" ? promptLengthProblem("the prompt", text) : undefined;
      if (message) problems.push({ input, message });
    }
    return problems;
  },
  async run({ positive, negative }) {
    // A linked text (from a String node) is not seen by the check: the same limit applies here.
    for (const [input, text] of [["positive", positive], ["negative", negative]] as const) {
      const message = promptLengthProblem("the prompt", text);
      if (message) throw new Error(`Prompt: input \`${input}\`: ${message}`);
    }
    return { prompt: { positive, negative } };
  },
});
