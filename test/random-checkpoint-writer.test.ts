/**
 * The streamed random checkpoint writer (scripts/checkpoints/write-random-checkpoint.ts), which the
 * checkpoint-build bench uses for the full-size SD 1.5 inpainting file: at the tiny fixture's architecture and
 * seed it writes the fixture's single-file.safetensors and fp16.safetensors byte for byte (so the full-size file
 * has the layout the readers and the diffusers referee were checked on), and the full-size layout has SD 1.5
 * inpainting's parameter counts.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { elementCount, ldmEntries, SD15_INPAINTING_ARCHITECTURE } from "../scripts/checkpoints/sd15-checkpoint-layout.ts";
import { writeRandomCheckpoint } from "../scripts/checkpoints/write-random-checkpoint.ts";
import { ensureTinyCheckpoints, TINY_SD15_ARCHITECTURE, type TinyCheckpointPaths } from "./fixtures/make-tiny-checkpoint.ts";

let dir: string;
let tiny: TinyCheckpointPaths;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-random-checkpoint-"));
  tiny = await ensureTinyCheckpoints();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("writeRandomCheckpoint", () => {
  it("writes the tiny fixture's single file, F32 and F16, byte for byte", async () => {
    for (const [float, fixture] of [["F32", tiny.singleFile], ["F16", tiny.fp16]] as const) {
      const file = path.join(dir, `tiny-${float}.safetensors`);
      const progress: number[] = [];
      const summary = await writeRandomCheckpoint(file, { architecture: TINY_SD15_ARCHITECTURE, float, seed: 1505, onProgress: (written) => progress.push(written) });
      const [written, expected] = await Promise.all([readFile(file), readFile(fixture)]);
      expect(written.length).toBe(expected.length);
      expect(written.equals(expected)).toBe(true);
      expect(summary.bytes).toBe(expected.length);
      expect(progress).toEqual([...progress].sort((a, b) => a - b));
    }
  });

  it("lays out the full-size SD 1.5 inpainting model: 1,143 tensors, its parameter counts", () => {
    const entries = ldmEntries(SD15_INPAINTING_ARCHITECTURE);
    const count = (component: string) =>
      entries.filter((e) => e.source === "random" && e.component === component).reduce((sum, e) => sum + elementCount(e.shape), 0);
    expect(entries).toHaveLength(1143);
    expect(count("unet")).toBe(859_535_364);
    expect(count("vae")).toBe(83_653_863);
    expect(count("text_encoder")).toBe(123_060_480);
    expect(new Set(entries.map((e) => e.name)).size).toBe(entries.length);
    const shape = (name: string) => entries.find((e) => e.name === name)?.shape;
    expect(shape("model.diffusion_model.input_blocks.0.0.weight")).toEqual([320, 9, 3, 3]);
    expect(shape("model.diffusion_model.output_blocks.2.1.conv.weight")).toEqual([1280, 1280, 3, 3]);
    expect(shape("first_stage_model.decoder.mid.attn_1.q.weight")).toEqual([512, 512, 1, 1]);
    expect(shape("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight")).toEqual([49408, 768]);
  });
});
