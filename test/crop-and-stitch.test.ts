import { writeFile } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBuiltinRegistry } from "../nodes/index.ts";
import { OnnxEngine } from "../server/engines/onnx/onnx-engine.ts";
import { Executor } from "../server/executor/executor.ts";
import { ensureTinyModels } from "./fixtures/make-tiny-models.ts";
import { createTestContext } from "./helpers/node-context.ts";
import { recordingEngine } from "./helpers/recording-engine.ts";

let real: OnnxEngine;
beforeAll(async () => {
  real = new OnnxEngine({ defaultModelDir: (await ensureTinyModels()).fp32, threads: 1 });
});
afterAll(async () => {
  await real.release();
});

describe("crop-and-stitch around a small mask on a large picture", () => {
  it("a 200×200 mask on 2048×2048: the UNet sees a 512×512 picture (64×64 latents) and only the masked area changes", async () => {
    const ctx = await createTestContext();
    const size = 2048;
    // A picture with structure everywhere, so any stray change would show.
    const data = Buffer.alloc(size * size * 3);
    for (let i = 0; i < size * size; i++) data.set([(i * 13) % 256, (i >> 11) % 256, (i >> 3) % 256], i * 3);
    await sharp(data, { raw: { width: size, height: size, channels: 3 } }).png({ compressionLevel: 1 }).toFile(path.join(ctx.folders.input, "big.png"));
    const mask = Buffer.alloc(size * size);
    for (let y = 1200; y < 1400; y++) mask.fill(255, y * size + 700, y * size + 900);
    await sharp(mask, { raw: { width: size, height: size, channels: 1 } }).png().toFile(path.join(ctx.folders.input, "big-mask.png"));

    const { engine, calls } = recordingEngine(real);
    const executor = new Executor({ registry: createBuiltinRegistry(), storage: ctx.folders, engines: { local: engine } });
    const workflow = {
      format: "maskflow-workflow",
      version: 1,
      nodes: [
        { id: "1", type: "LoadImage", inputs: { image: "big.png" } },
        { id: "2", type: "LoadMask", inputs: { image: "big-mask.png" } },
        { id: "3", type: "CropToMask", inputs: { image: ["1", "image"], mask: ["2", "mask"], padding: 32, size: 512 } },
        { id: "4", type: "Prompt", inputs: { positive: "a cat" } },
        { id: "5", type: "Scheduler", inputs: { steps: 2 } },
        { id: "6", type: "Inpaint", inputs: { image: ["3", "image"], mask: ["3", "mask"], prompt: ["4", "prompt"], scheduler: ["5", "scheduler"] } },
        { id: "7", type: "Stitch", inputs: { original: ["1", "image"], inpainted: ["6", "images"], mask: ["2", "mask"], crop: ["3", "crop"], feather: 8 } },
        { id: "8", type: "SaveImage", inputs: { images: ["7", "image"] } },
      ],
    };
    const result = await executor.run(workflow, { jobId: "big" });
    expect(result.error).toBeUndefined();
    expect(calls).toHaveLength(1);
    expect(calls[0].request.image).toMatchObject({ width: 512, height: 512 });
    expect(calls[0].unetSampleDims.slice(1)).toEqual([9, 64, 64]);

    const saved = path.join(ctx.folders.output, result.outputs["8"].images[0].filename);
    const { data: out, info } = await sharp(saved).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([size, size]);
    // Outside the mask and its 8 px feather every byte is the original's; inside, the model painted.
    let changedOutside = 0;
    let changedInside = 0;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const i = (y * size + x) * 3;
        const same = out[i] === data[i] && out[i + 1] === data[i + 1] && out[i + 2] === data[i + 2];
        const inMask = x >= 700 && x < 900 && y >= 1200 && y < 1400;
        const nearMask = x >= 700 - 16 && x < 900 + 16 && y >= 1200 - 16 && y < 1400 + 16;
        if (!nearMask && !same) changedOutside++;
        if (inMask && !same) changedInside++;
      }
    }
    expect(changedOutside).toBe(0);
    expect(changedInside).toBeGreaterThan(200 * 200 * 0.9);
  });
});
