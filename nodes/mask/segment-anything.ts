import { defineNode } from "../node-definition.ts";
import { parseBox, parsePoints } from "./prompt-text.ts";
import { SegmentPromptError } from "../../server/engines/segment/segment-engine.ts";

const NODE = "SegmentAnything";

/** Click-to-select as a node: the mask of the object the points (and box) pick, by Segment Anything. */
export const SegmentAnythingNode = defineNode({
  type: NODE,
  category: "mask",
  displayName: "Segment Anything",
  description:
    "The mask of the object under the clicks: Segment Anything (MobileSAM by default: `maskflow models pull mobile-sam`) " +
    "picks the object the positive points are on, leaving out what the negative points are on; a box (left,top,right,bottom) " +
    "picks the object inside it. Points are picture pixels, 0,0 at the top left, as \"x,y; x,y\". The picture's embedding is " +
    "computed once and kept, so changing only the points runs just the small decoder. With a batch, the first picture is used. " +
    "model: a folder under the models folder or a path; empty: models/mobile-sam.",
  inputs: {
    image: { type: "IMAGE" },
    points: { type: "STRING", widget: "text", default: "", description: 'Points on the object, "x,y; x,y".' },
    negative_points: { type: "STRING", widget: "text", default: "", description: 'Points not on the object, "x,y; x,y".' },
    box: { type: "STRING", widget: "text", default: "", description: 'A box around the object, "left,top,right,bottom"; empty: none.' },
    model: { type: "STRING", widget: "text", default: "", description: "Segment Anything folder; empty: models/mobile-sam." },
  },
  outputs: {
    mask: { type: "MASK", description: "White where the object is." },
  },
  check(inputs) {
    const problems: { input: "points" | "negative_points" | "box"; message: string }[] = [];
    for (const [input, positive] of [["points", true], ["negative_points", false]] as const) {
      try {
        parsePoints(NODE, input, inputs[input] ?? "", positive);
      } catch (error) {
        problems.push({ input, message: (error as Error).message });
      }
    }
    try {
      parseBox(NODE, "box", inputs.box ?? "");
    } catch (error) {
      problems.push({ input: "box", message: (error as Error).message });
    }
    return problems;
  },
  async run(inputs, ctx) {
    const engine = ctx.engines.segment;
    if (!engine) throw new Error(`${NODE}: this server has no Segment Anything engine`);
    const points = [...parsePoints(NODE, "points", inputs.points, true), ...parsePoints(NODE, "negative_points", inputs.negative_points, false)];
    const box = parseBox(NODE, "box", inputs.box);
    const picture = inputs.image[0];
    if (!picture) throw new Error(`${NODE}: input \`image\` is an empty batch`);
    ctx.progress({ value: 0, max: 1 });
    try {
      const result = await engine.segment({ picture, prompt: { points, box }, model: inputs.model });
      ctx.report({ score: Math.round(result.score * 1000) / 1000, embedding_cached: result.embeddingCached });
      ctx.progress({ value: 1, max: 1 });
      return { mask: result.mask };
    } catch (error) {
      if (error instanceof SegmentPromptError) throw new Error(`${NODE}: ${error.message}`);
      throw error;
    }
  },
});
