/**
 * onnxruntime-node runs a session synchronously on the thread that calls it. Maskflow's sessions live on
 * their own thread, so the event loop goes on turning (answering HTTP, WebSocket) while a UNet call runs.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MID_MODEL_OPTIONS } from "../bench/make-mid-model.ts";
import { OnnxSession } from "../server/engines/onnx/onnx-session.ts";
import { writeTinyModel } from "./fixtures/make-tiny-models.ts";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-onnx-thread-"));
  // A UNet wide and deep enough that one call takes tens of milliseconds or more.
  await writeTinyModel(dir, MID_MODEL_OPTIONS);
}, 120_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the onnxruntime thread", () => {
  it("leaves the event loop free while a session runs, and gives the same outputs call after call", async () => {
    const unet = await OnnxSession.create(path.join(dir, "unet", "model.onnx"), "unet", { device: "cpu", threads: 1 });
    try {
      const declared = unet.inputs.get("encoder_hidden_states")!.shape[2];
      const hidden = typeof declared === "number" ? declared : 32;
      const channels = MID_MODEL_OPTIONS.unetChannels ?? 9;
      const feeds = {
        sample: { kind: "float", data: new Float32Array(2 * channels * 64 * 64).map((_, i) => Math.sin(i)), dims: [2, channels, 64, 64] },
        timestep: { kind: "float", data: Float32Array.of(500), dims: [1] },
        encoder_hidden_states: { kind: "float", data: new Float32Array(2 * 77 * hidden).fill(0.1), dims: [2, 77, hidden] },
      } as const;
      const first = await unet.run(feeds, ["out_sample"]);
      // Turns of the event loop while the second call runs: none at all if the call held the loop.
      let turns = 0;
      let running = true;
      const turn = () => {
        turns++;
        if (running) setImmediate(turn);
      };
      setImmediate(turn);
      const second = await unet.run(feeds, ["out_sample"]);
      running = false;
      expect(turns).toBeGreaterThan(10);
      expect(second.out_sample.dims).toEqual([2, 4, 64, 64]);
      expect(second.out_sample.data).toEqual(first.out_sample.data);
    } finally {
      await unet.release();
    }
    await expect(unet.run({}, ["out_sample"])).rejects.toThrow();
  }, 120_000);

  it("names the file when onnxruntime cannot open it, and the thread serves the next opening", async () => {
    await expect(OnnxSession.create(path.join(dir, "no-such.onnx"), "vae_decoder/model.onnx", { device: "cpu", threads: 1 })).rejects.toThrow(
      /^vae_decoder\/model\.onnx: onnxruntime could not load it/,
    );
    const decoder = await OnnxSession.create(path.join(dir, "vae_decoder", "model.onnx"), "vae_decoder", { device: "cpu", threads: 1 });
    expect([...decoder.inputs.keys()]).toEqual(["latent_sample"]);
    await decoder.release();
  }, 60_000);
});
