/**
 * GET /api/models/checkpoints and GET /api/models/loras against a real server on 127.0.0.1: what a CheckpointLoader's
 * combo offers from the local engine's models folder (checkpoint files in checkpoints/, then model folders) and what a
 * LoraLoader's offers (the .safetensors files of loras/), names only, behind the same key and Origin guards as every
 * API route.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxEngine } from "../server/engines/onnx/onnx-engine.ts";
import type { RunningServer } from "../server/maskflow-server.ts";
import { api, startTestServer } from "./helpers/test-server.ts";

let modelsDir = "";
let dataDir = "";
const servers: RunningServer[] = [];

async function modelFolder(name: string): Promise<void> {
  await mkdir(path.join(modelsDir, name, "unet"), { recursive: true });
  await writeFile(path.join(modelsDir, name, "model_index.json"), "{}");
}

beforeAll(async () => {
  modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-checkpoint-choices-"));
  dataDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-checkpoint-choices-data-"));
  const checkpoints = path.join(modelsDir, "checkpoints");
  await mkdir(checkpoints, { recursive: true });
  // Checkpoint files, written out of order; the server sorts them.
  for (const name of ["v1-5-pruned-emaonly.safetensors", "Dreamshaper_8_INPAINTING.ckpt", "anything-v3.SAFETENSORS"]) {
    await writeFile(path.join(checkpoints, name), "weights");
  }
  // Not checkpoints: other extensions, a hidden file, a folder named like a checkpoint.
  await writeFile(path.join(checkpoints, "notes.txt"), "hello");
  await writeFile(path.join(checkpoints, "embedding.pt"), "x");
  await writeFile(path.join(checkpoints, ".hidden.safetensors"), "x");
  await mkdir(path.join(checkpoints, "folder.safetensors"));
  // Model folders (model_index.json) directly in the models folder; others are not models.
  await modelFolder("sd15-inpainting");
  await modelFolder("my-model");
  await mkdir(path.join(modelsDir, "not-a-model", "unet"), { recursive: true });
  await modelFolder(".built");
  await mkdir(path.join(modelsDir, ".built", "0123abcd"), { recursive: true });
  await writeFile(path.join(modelsDir, ".built", "0123abcd", "model_index.json"), "{}");
  // Helper models and a stray file at the top are not SD models either.
  await modelFolder("mobile-sam");
  await writeFile(path.join(modelsDir, "loose.safetensors"), "weights");
  // LoRAs, written out of order; only .safetensors files count (any case), and none of them is a checkpoint.
  const loras = path.join(modelsDir, "loras");
  await mkdir(loras, { recursive: true });
  for (const name of ["lcm-lora-sdv1-5.safetensors", "Detail_Tweaker.SAFETENSORS", "add-detail.safetensors"]) {
    await writeFile(path.join(loras, name), "lora");
  }
  // Not LoRAs Maskflow reads: pickles, other files, a hidden file, a folder named like a LoRA, a file in a subfolder.
  await writeFile(path.join(loras, "old-style.pt"), "x");
  await writeFile(path.join(loras, "old-style.ckpt"), "x");
  await writeFile(path.join(loras, "readme.txt"), "x");
  await writeFile(path.join(loras, ".hidden.safetensors"), "x");
  await mkdir(path.join(loras, "folder.safetensors"));
  await mkdir(path.join(loras, "nested"));
  await writeFile(path.join(loras, "nested", "deep.safetensors"), "x");
}, 30_000);

afterAll(async () => {
  await Promise.all(servers.map((server) => server.close()));
  await rm(modelsDir, { recursive: true, force: true });
  await rm(dataDir, { recursive: true, force: true });
});

async function start(options: Parameters<typeof startTestServer>[0] = {}): Promise<RunningServer> {
  const engine = new OnnxEngine({ modelsDir, defaultModelDir: path.join(modelsDir, "sd15-inpainting"), threads: 1 });
  const server = await startTestServer({ dataDir, engines: { local: engine }, ...options });
  servers.push(server);
  return server;
}

describe("GET /api/models/checkpoints", () => {
  it("lists checkpoint files of checkpoints/ then model folders, each sorted, and nothing else", async () => {
    const server = await start();
    const { status, headers, body } = await api(server, "GET", "/api/models/checkpoints");
    expect(status).toBe(200);
    expect(headers.get("content-type")).toMatch(/application\/json/);
    expect(body).toEqual({
      checkpoints: ["Dreamshaper_8_INPAINTING.ckpt", "anything-v3.SAFETENSORS", "v1-5-pruned-emaonly.safetensors", "my-model", "sd15-inpainting"],
    });
  });

  it("names no server path: no folder, no separator, nothing of the models folder's location", async () => {
    const server = await start();
    const response = await fetch(`${server.url}/api/models/checkpoints`);
    const text = await response.text();
    expect(text).not.toContain(modelsDir);
    expect(text).not.toContain(os.tmpdir());
    expect(text).not.toMatch(/[/\\]/);
    for (const name of (JSON.parse(text) as { checkpoints: string[] }).checkpoints) expect(path.isAbsolute(name)).toBe(false);
  });

  it("follows the folder as it changes, and answers an empty list for a models folder that is not there", async () => {
    const server = await start();
    await writeFile(path.join(modelsDir, "checkpoints", "added-later.safetensors"), "weights");
    try {
      expect((await api(server, "GET", "/api/models/checkpoints")).body.checkpoints).toContain("added-later.safetensors");
    } finally {
      await rm(path.join(modelsDir, "checkpoints", "added-later.safetensors"));
    }
    const missing = new OnnxEngine({ modelsDir: path.join(modelsDir, "nowhere"), threads: 1 });
    const empty = await startTestServer({ dataDir, engines: { local: missing } });
    servers.push(empty);
    expect(await api(empty, "GET", "/api/models/checkpoints")).toMatchObject({ status: 200, body: { checkpoints: [] } });
  });

  it("is guarded like every API route: a key when the server has keys, and no other site's Origin", async () => {
    const server = await start({ apiKeys: ["secret-1"] });
    const noKey = await api(server, "GET", "/api/models/checkpoints");
    expect(noKey.status).toBe(401);
    expect(JSON.stringify(noKey.body)).not.toContain("checkpoints\":");
    const withKey = await fetch(`${server.url}/api/models/checkpoints`, { headers: { "x-api-key": "secret-1" } });
    expect(withKey.status).toBe(200);
    expect(((await withKey.json()) as { checkpoints: string[] }).checkpoints).toContain("my-model");
    const foreign = await fetch(`${server.url}/api/models/checkpoints`, { headers: { "x-api-key": "secret-1", origin: "http://evil.example" } });
    expect(foreign.status).toBe(403);
    expect(((await foreign.json()) as { error: { code: string } }).error.code).toBe("forbidden_origin");
  });
});

describe("GET /api/models/loras", () => {
  const LORAS = ["Detail_Tweaker.SAFETENSORS", "add-detail.safetensors", "lcm-lora-sdv1-5.safetensors"];

  it("lists the .safetensors files of loras/, sorted, by name only, and nothing else", async () => {
    const server = await start();
    const { status, headers, body } = await api(server, "GET", "/api/models/loras");
    expect(status).toBe(200);
    expect(headers.get("content-type")).toMatch(/application\/json/);
    expect(body).toEqual({ loras: LORAS });
    // The two lists stay apart: no LoRA among the checkpoints, no checkpoint among the LoRAs.
    const { body: checkpoints } = await api(server, "GET", "/api/models/checkpoints");
    for (const name of LORAS) expect(checkpoints.checkpoints).not.toContain(name);
  });

  it("names no server path, and follows the folder as it changes; no loras/ folder is an empty list", async () => {
    const server = await start();
    await writeFile(path.join(modelsDir, "loras", "added-later.safetensors"), "lora");
    try {
      const text = await (await fetch(`${server.url}/api/models/loras`)).text();
      expect(text).not.toContain(modelsDir);
      expect(text).not.toContain(os.tmpdir());
      expect(text).not.toMatch(/[/\\]/);
      expect((JSON.parse(text) as { loras: string[] }).loras).toEqual(["Detail_Tweaker.SAFETENSORS", "add-detail.safetensors", "added-later.safetensors", "lcm-lora-sdv1-5.safetensors"]);
    } finally {
      await rm(path.join(modelsDir, "loras", "added-later.safetensors"));
    }
    const missing = new OnnxEngine({ modelsDir: path.join(modelsDir, "nowhere"), threads: 1 });
    const empty = await startTestServer({ dataDir, engines: { local: missing } });
    servers.push(empty);
    expect(await api(empty, "GET", "/api/models/loras")).toMatchObject({ status: 200, body: { loras: [] } });
  });

  it("is guarded like every API route: a key when the server has keys, and no other site's Origin", async () => {
    const server = await start({ apiKeys: ["secret-1"] });
    const noKey = await api(server, "GET", "/api/models/loras");
    expect(noKey.status).toBe(401);
    expect(JSON.stringify(noKey.body)).not.toContain("safetensors");
    const withKey = await fetch(`${server.url}/api/models/loras`, { headers: { "x-api-key": "secret-1" } });
    expect(withKey.status).toBe(200);
    expect(((await withKey.json()) as { loras: string[] }).loras).toEqual(LORAS);
    const foreign = await fetch(`${server.url}/api/models/loras`, { headers: { "x-api-key": "secret-1", origin: "http://evil.example" } });
    expect(foreign.status).toBe(403);
    expect(((await foreign.json()) as { error: { code: string } }).error.code).toBe("forbidden_origin");
  });
});
