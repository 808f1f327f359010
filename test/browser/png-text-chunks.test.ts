import { describe, expect, it } from "vitest";
import sharp from "sharp";
import { embedWorkflow } from "../../nodes/image/png-workflow-chunk.ts";
import { isPng, readPngTextChunks, readWorkflowFromPng } from "../../client/src/files/png-text-chunks.ts";

describe("reading a PNG's workflow in the browser code", () => {
  it("finds the workflow SaveImage embeds, non-ASCII text included", async () => {
    const png = new Uint8Array(await sharp({ create: { width: 4, height: 3, channels: 3, background: "#08f" } }).png().toBuffer());
    const workflow = { format: "maskflow-workflow", version: 1, nodes: [{ id: "1", type: "Prompt", inputs: { positive: "café ☕ 猫" } }] };
    const withWorkflow = embedWorkflow(png, workflow);
    expect(isPng(withWorkflow)).toBe(true);
    expect(readWorkflowFromPng(withWorkflow)).toEqual(workflow);
    expect(readWorkflowFromPng(png)).toBeUndefined();
  });

  it("lists tEXt chunks and rejects what is not a PNG or is cut short", async () => {
    const png = new Uint8Array(await sharp({ create: { width: 2, height: 2, channels: 3, background: "#000" } }).png().toBuffer());
    const tagged = embedWorkflow(png, { a: 1 });
    expect([...readPngTextChunks(tagged).keys()]).toEqual(["workflow"]);
    expect(() => readPngTextChunks(new TextEncoder().encode("GIF89a"))).toThrow(/not a PNG/);
    expect(() => readPngTextChunks(tagged.subarray(0, 50))).toThrow(/past the end/);
  });
});
