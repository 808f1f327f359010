/**
 * The editor's path to a checkpoint: a .safetensors file dropped into the models folder's checkpoints/, a
 * CheckpointLoader naming it, wired to Inpaint's MODEL input, queued over HTTP; the build's progress arrives on
 * the loader's node over the WebSocket, and the picture comes out. Names are never paths, and errors show none.
 */
import { copyFile, mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngines, type Engines } from "../server/engines/create-engines.ts";
import { ensureTinyCheckpoints } from "./fixtures/make-tiny-checkpoint.ts";
import { api, startTestServer, type TestServer } from "./helpers/test-server.ts";
import { connectClient } from "./helpers/ws-client.ts";

let modelsDir: string;
let dataDir: string;
let engines: Engines;
let server: TestServer;
let client: Awaited<ReturnType<typeof connectClient>>;

beforeAll(async () => {
  const tiny = await ensureTinyCheckpoints();
  modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-checkpoint-node-"));
  await mkdir(path.join(modelsDir, "checkpoints"), { recursive: true });
  await copyFile(tiny.singleFile, path.join(modelsDir, "checkpoints", "tiny-inpainting.safetensors"));
  dataDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-checkpoint-node-data-"));
  await mkdir(path.join(dataDir, "input"), { recursive: true });
  await sharp({ create: { width: 64, height: 64, channels: 4, background: { r: 200, g: 120, b: 40, alpha: 1 } } })
    .composite([{ input: { create: { width: 24, height: 24, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }, left: 20, top: 20, blend: "dest-in" }])
    .png()
    .toFile(path.join(dataDir, "input", "hole.png"));
  engines = await createEngines({ modelsDir, modelDir: path.join(modelsDir, "no-default-model"), segmind: { apiKey: "", baseUrl: "http://127.0.0.1:9" } });
  server = await startTestServer({ dataDir, engines: engines.nodeEngines });
  client = await connectClient(server.url, "checkpoint-client");
}, 60_000);

afterAll(async () => {
  client?.close();
  await server?.close();
  await engines?.dispose();
  for (const dir of [modelsDir, dataDir]) if (dir) await rm(dir, { recursive: true, force: true });
});

function workflow(checkpoint: string) {
  return {
    format: "maskflow-workflow",
    version: 1,
    nodes: [
      { id: "1", type: "LoadImage", inputs: { image: "hole.png" } },
      { id: "2", type: "CheckpointLoader", inputs: { checkpoint } },
      { id: "3", type: "Prompt", inputs: { positive: "a wooden door", negative: "" } },
      { id: "4", type: "Scheduler", inputs: { scheduler: "DDIM", steps: 2, guidance: 7.5, strength: 1, seed: 1 } },
      {
        id: "5",
        type: "Inpaint",
        inputs: { image: ["1", "image"], mask: ["1", "mask"], prompt: ["3", "prompt"], scheduler: ["4", "scheduler"], model: ["2", "model"], width: 64, height: 64 },
      },
      { id: "6", type: "SaveImage", inputs: { images: ["5", "images"], filename_prefix: "checkpoint" } },
    ],
  };
}

describe("serve --model CHECKPOINT", () => {
  it("a checkpoint file as the server's model counts as installed, and an unlinked Inpaint builds and uses it", async () => {
    const tiny = await ensureTinyCheckpoints();
    const ownModels = await mkdtemp(path.join(os.tmpdir(), "maskflow-serve-checkpoint-"));
    const own = await createEngines({ modelsDir: ownModels, modelDir: tiny.singleFile, segmind: { apiKey: "", baseUrl: "http://127.0.0.1:9" } });
    try {
      expect(own.status().local).toMatchObject({ installed: true });
      const folder = await own.local.prepare(tiny.singleFile);
      expect(path.dirname(folder)).toBe(path.join(ownModels, ".built"));
    } finally {
      await own.dispose();
      await rm(ownModels, { recursive: true, force: true });
    }
  });
});

describe("CheckpointLoader → Inpaint from the HTTP API", () => {
  it("builds the checkpoint with progress on the loader's node, then inpaints with it", async () => {
    const { status, body } = await api(server, "POST", "/api/prompt", { workflow: workflow("tiny-inpainting.safetensors"), clientId: "checkpoint-client" });
    expect(status, JSON.stringify(body)).toBe(200);
    const done = await client.waitFor((m) => (m.type === "execution_success" || m.type === "execution_error") && m.data.jobId === body.id, 120_000);
    expect(done.type, JSON.stringify(done.data)).toBe("execution_success");
    const labels = client.messages.filter((m) => m.type === "progress" && m.data.node === "2").map((m) => String(m.data.label ?? ""));
    expect(labels.some((label) => /^building (text_encoder|unet|vae_encoder|vae_decoder) \d+ %$/.test(label)), labels.join(" | ")).toBe(true);
    expect(await readdir(path.join(dataDir, "output"))).toEqual(expect.arrayContaining([expect.stringMatching(/^checkpoint_.*\.png$/)]));
    // Built once, by content, inside the models folder (beside parts/, the store of each part's graph).
    expect((await readdir(path.join(modelsDir, ".built"))).filter((name) => !name.startsWith(".") && name !== "parts")).toHaveLength(1);
  });

  it("a name that is a path, or names nothing installed, fails on the loader's node without showing a server folder", async () => {
    for (const name of ["../../etc/passwd", "/etc", "missing.safetensors"]) {
      const { body } = await api(server, "POST", "/api/prompt", { workflow: workflow(name), clientId: "checkpoint-client" });
      const failed = await client.waitFor((m) => m.type === "execution_error" && m.data.jobId === body.id, 60_000);
      const message = JSON.stringify(failed.data);
      expect(failed.data.node).toBe("2");
      expect(String(failed.data.message)).toMatch(name === "missing.safetensors" ? /no model "missing\.safetensors" in the models folder.*installed: tiny-inpainting\.safetensors/ : /is not a model name/);
      expect(message).not.toContain(modelsDir);
      expect(message).not.toContain(os.tmpdir());
    }
  });
});
