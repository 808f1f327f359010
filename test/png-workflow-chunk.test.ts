import extractChunks from "png-chunks-extract";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { embedWorkflow, readWorkflowFromPng } from "../nodes/image/png-workflow-chunk.ts";

async function gradientPng(width: number, height: number): Promise<{ png: Uint8Array; pixels: Uint8Array }> {
  const pixels = new Uint8Array(width * height * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 7) % 256;
  const png = new Uint8Array(await sharp(pixels, { raw: { width, height, channels: 3 } }).png().toBuffer());
  return { png, pixels };
}

const workflow = {
  format: "maskflow-workflow",
  version: 1,
  nodes: [
    { id: "1", type: "LoadImage", inputs: { image: "room.png" }, ui: { pos: [40, 80] } },
    { id: "3", type: "Prompt", inputs: { positive: "un café à Zürich, 東京の夜 🌃", negative: "blurry \"quoted\"\n" } },
  ],
};

describe("PNG workflow chunk", () => {
  it("round-trips a workflow, non-Latin-1 text included", async () => {
    const { png } = await gradientPng(8, 4);
    const withWorkflow = embedWorkflow(png, workflow);
    expect(readWorkflowFromPng(withWorkflow)).toEqual(workflow);
  });

  it("stores it as a tEXt chunk named workflow right after IHDR", async () => {
    const { png } = await gradientPng(8, 4);
    const chunks = extractChunks(embedWorkflow(png, workflow));
    expect(chunks[0].name).toBe("IHDR");
    expect(chunks[1].name).toBe("tEXt");
    expect(new TextDecoder("latin1").decode(chunks[1].data.subarray(0, 9))).toBe("workflow\0");
  });

  it("gives undefined for a PNG without the chunk", async () => {
    const { png } = await gradientPng(8, 4);
    expect(readWorkflowFromPng(png)).toBeUndefined();
  });

  it("leaves the picture intact: sharp decodes the same pixels", async () => {
    const { png, pixels } = await gradientPng(16, 9);
    const { data, info } = await sharp(embedWorkflow(png, workflow)).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([16, 9, 3]);
    expect(new Uint8Array(data)).toEqual(pixels);
  });

  it("replaces an earlier workflow instead of adding a second one", async () => {
    const { png } = await gradientPng(4, 4);
    const twice = embedWorkflow(embedWorkflow(png, { old: true }), { new: true });
    expect(readWorkflowFromPng(twice)).toEqual({ new: true });
    expect(extractChunks(twice).filter((chunk) => chunk.name === "tEXt")).toHaveLength(1);
  });

  it("refuses bytes that are not a PNG", () => {
    const notPng = new TextEncoder().encode('{"format":"maskflow-workflow"}');
    expect(() => readWorkflowFromPng(notPng)).toThrow(/not a PNG/);
    expect(() => embedWorkflow(notPng, workflow)).toThrow(/not a PNG/);
  });
});
