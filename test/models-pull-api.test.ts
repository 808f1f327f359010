/**
 * Pulling the model through the server (what the editor's Download model button does), against the fake hub
 * on 127.0.0.1: the preview of size and folder, progress as `model_pull` WebSocket events, the engine taking
 * the model without a restart, cancel and resume, one pull at a time, the errors a user can act on, and the
 * guards every route has (key, Origin).
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, stat, symlink } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createEngines, type Engines } from "../server/engines/create-engines.ts";
import { DEFAULT_MODEL_REPO } from "../server/models/default-model.ts";
import { formatBytes } from "../server/models/format-bytes.ts";
import { MANIFEST_NAME } from "../server/models/model-manifest.ts";
import { ModelPullService, type ModelPullServiceOptions, type ModelPullStatus } from "../server/models/model-pull-service.ts";
import { BIG_FILE, BIG_FILE_SIZE, type FakeHub, type FakeHubBehaviour, startFakeHub } from "./helpers/fake-hub.ts";
import { api, startTestServer, type TestServer } from "./helpers/test-server.ts";
import { connectClient } from "./helpers/ws-client.ts";

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Setup {
  hub: FakeHub;
  modelsDir: string;
  /** Where the engine looks for its model (models/sd15-inpainting), missing at first. */
  modelDir: string;
  engines: Engines;
  pulls: ModelPullService;
  server: TestServer;
  env: NodeJS.ProcessEnv;
}

/** A server like `maskflow serve` on a fresh install: no model, the fake hub posing as the default repository. */
async function setup(
  options: { behaviour?: FakeHubBehaviour; endpoint?: string; pulls?: Partial<ModelPullServiceOptions>; apiKeys?: string[] } = {},
): Promise<Setup> {
  const hub = await startFakeHub({ behaviour: options.behaviour, repo: DEFAULT_MODEL_REPO });
  cleanups.push(() => hub.close());
  const root = await mkdtemp(path.join(os.tmpdir(), "maskflow-pull-api-"));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const modelsDir = path.join(root, "models");
  const modelDir = path.join(modelsDir, "sd15-inpainting");
  const engines = await createEngines({ modelDir, segmind: { apiKey: "", baseUrl: "http://127.0.0.1:9" } });
  cleanups.push(() => engines.dispose());
  const env: NodeJS.ProcessEnv = { HF_ENDPOINT: options.endpoint ?? hub.url };
  const pulls = new ModelPullService({ env, modelsDir, engine: engines.local, retryDelayMs: 1, maxAttempts: 2, ...options.pulls });
  cleanups.push(() => pulls.close());
  const server = await startTestServer({
    dataDir: path.join(root, "data"),
    engines: engines.nodeEngines,
    engineStatus: () => engines.status(),
    modelPulls: pulls,
    apiKeys: options.apiKeys ?? [],
  });
  cleanups.push(() => server.close());
  return { hub, modelsDir, modelDir, engines, pulls, server, env };
}

/** The pull's status, asked until it has ended (bounded). */
async function ended(server: TestServer): Promise<ModelPullStatus> {
  for (let i = 0; i < 600; i++) {
    const { body } = await api(server, "GET", "/api/models/pull");
    if (body.pull && !["planning", "downloading"].includes(body.pull.state)) return body.pull;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("the pull did not end within 30 s");
}

async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve, reject) => probe.close((error) => (error ? reject(error) : resolve())));
  return port;
}

describe("pulling the model through the server", () => {
  it("shows size and folder first, pulls the default model with model_pull events, lists it, and the engine has it without a restart", async () => {
    const { hub, server, modelDir } = await setup({ behaviour: { bytesPerSecond: 8 * 1024 * 1024 } });
    const before = await api(server, "GET", "/api/models");
    expect(before.status).toBe(200);
    expect(before.body).toMatchObject({ models: [], pull: null, defaultModelDir: modelDir });
    expect((await api(server, "GET", "/api/system")).body.engines.local).toMatchObject({ installed: false, defaultModelDir: modelDir });

    // What the Download button shows: the hub's sizes of the files a pull takes, and where they go.
    const preview = await api(server, "GET", "/api/models/pull/preview");
    expect(preview.status).toBe(200);
    const wanted = hub.files.filter((f) => !/^(\.gitattributes|README\.md|safety_checker\/|unet\/diffusion_pytorch_model)/.test(f.path));
    const totalBytes = wanted.reduce((sum, f) => sum + f.content.length, 0);
    expect(preview.body).toMatchObject({ repo: DEFAULT_MODEL_REPO, revision: "main", name: "sd15-inpainting", modelDir, totalBytes, neededBytes: totalBytes, fileCount: wanted.length });
    expect(preview.body.freeBytes).toBeGreaterThan(totalBytes);
    // Asking fetched no file.
    expect(hub.requests.every((r) => r.path.startsWith("/api/"))).toBe(true);

    const socket = await connectClient(server.url, "watcher");
    cleanups.push(() => socket.close());
    const started = await api(server, "POST", "/api/models/pull", {});
    expect(started.status).toBe(202);
    expect(started.body.pull).toMatchObject({ repo: DEFAULT_MODEL_REPO, modelDir, totalBytes, fileCount: wanted.length });
    await socket.waitFor((m) => m.type === "model_pull" && m.data.state === "done", 30_000);

    const events = socket.messages.filter((m) => m.type === "model_pull").map((m) => m.data as ModelPullStatus);
    expect(events[0].state).toBe("planning");
    const downloading = events.filter((e) => e.state === "downloading");
    expect(downloading.length).toBeGreaterThan(1);
    for (const event of downloading) {
      expect(event.totalBytes).toBe(totalBytes);
      expect(event.bytes).toBeLessThanOrEqual(totalBytes);
      expect(typeof event.bytesPerSecond).toBe("number");
    }
    // Bytes only grow, and speed and time left are known once the download is under way.
    expect(downloading.map((e) => e.bytes)).toEqual([...downloading.map((e) => e.bytes)].sort((a, b) => a - b));
    expect(downloading.some((e) => e.bytesPerSecond > 0 && typeof e.secondsLeft === "number")).toBe(true);
    expect(events.at(-1)).toMatchObject({ state: "done", bytes: totalBytes, secondsLeft: null, filesDone: wanted.length });

    const after = await api(server, "GET", "/api/models");
    expect(after.body.models).toHaveLength(1);
    expect(after.body.models[0]).toMatchObject({ name: "sd15-inpainting", modelDir, kind: "pulled", status: "complete", repo: DEFAULT_MODEL_REPO, problems: [] });
    expect(after.body.pull).toMatchObject({ state: "done" });
    expect((await api(server, "GET", "/api/system")).body.engines.local).toMatchObject({ installed: true, defaultModelDir: modelDir });
  });

  it("into a named folder: the engine without a model of its own switches to it", async () => {
    const { server, modelsDir, engines } = await setup();
    const started = await api(server, "POST", "/api/models/pull", { name: "tiny" });
    expect(started.status).toBe(202);
    expect(started.body.pull.modelDir).toBe(path.join(modelsDir, "tiny"));
    expect(await ended(server)).toMatchObject({ state: "done" });
    expect(engines.local.defaultModelDir).toBe(path.join(modelsDir, "tiny"));
    expect((await api(server, "GET", "/api/system")).body.engines.local).toMatchObject({ installed: true, defaultModelDir: path.join(modelsDir, "tiny") });
  });

  it("cancel keeps what was fetched, and the next pull resumes it with a Range request", async () => {
    const { hub, server, modelDir } = await setup({ behaviour: { bytesPerSecond: 1024 * 1024 } });
    const socket = await connectClient(server.url, "watcher");
    cleanups.push(() => socket.close());
    expect((await api(server, "POST", "/api/models/pull", {})).status).toBe(202);
    await socket.waitFor((m) => m.type === "model_pull" && m.data.file === BIG_FILE && m.data.bytes > m.data.totalBytes - BIG_FILE_SIZE, 30_000);
    // One at a time.
    const second = await api(server, "POST", "/api/models/pull", {});
    expect(second.status).toBe(409);
    expect(second.body.error.code).toBe("pull_running");

    const cancelled = await api(server, "DELETE", "/api/models/pull");
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.pull).toMatchObject({ state: "cancelled", secondsLeft: null });
    await socket.waitFor((m) => m.type === "model_pull" && m.data.state === "cancelled");
    const part = path.join(modelDir, `${BIG_FILE}.part`);
    const kept = (await stat(part)).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(BIG_FILE_SIZE);
    expect(existsSync(path.join(modelDir, "model_index.json"))).toBe(false);
    expect((await api(server, "GET", "/api/system")).body.engines.local.installed).toBe(false);
    const listed = await api(server, "GET", "/api/models");
    expect(listed.body.models[0]).toMatchObject({ kind: "unfinished-pull", status: "incomplete" });
    expect((await api(server, "DELETE", "/api/models/pull")).status).toBe(404);

    hub.behaviour.bytesPerSecond = undefined;
    const before = hub.requests.length;
    const resumed = await api(server, "POST", "/api/models/pull", {});
    expect(resumed.status).toBe(202);
    expect(await ended(server)).toMatchObject({ state: "done" });
    const content = hub.contentRequests(BIG_FILE).filter((r) => hub.requests.indexOf(r) >= before);
    expect(content).toHaveLength(1);
    expect(content[0].range).toBe(`bytes=${kept}-`);
    expect(content[0].status).toBe(206);
    expect(content[0].bytesSent).toBe(BIG_FILE_SIZE - kept);
    expect(hub.contentRequests("text_encoder/model.onnx").filter((r) => hub.requests.indexOf(r) >= before)).toHaveLength(0);
    expect(existsSync(path.join(modelDir, MANIFEST_NAME))).toBe(true);
  });
});

describe("pull errors a user can act on", () => {
  it("no network: says the hub cannot be reached and names HF_ENDPOINT", async () => {
    const port = await closedPort();
    const { server } = await setup({ endpoint: `http://127.0.0.1:${port}` });
    const response = await api(server, "POST", "/api/models/pull", {});
    expect(response.status).toBe(502);
    expect(response.body.error.code).toBe("hub_unreachable");
    expect(response.body.error.message).toBe(
      `cannot reach the model hub at http://127.0.0.1:${port} (connection refused by 127.0.0.1:${port}): check the network, and HF_ENDPOINT (set to http://127.0.0.1:${port})`,
    );
    expect((await api(server, "GET", "/api/models")).body.pull).toMatchObject({ state: "failed", errorCode: "hub_unreachable" });
    expect((await api(server, "GET", "/api/models/pull/preview")).body.error.code).toBe("hub_unreachable");
  });

  it("a 401 from the hub names HF_TOKEN (never a 401 of our own); with the token set, the pull works", async () => {
    const { server, env } = await setup({ behaviour: { requireToken: "hf_secret" } });
    const denied = await api(server, "POST", "/api/models/pull", {});
    expect(denied.status).toBe(502);
    expect(denied.body.error.code).toBe("hub_denied");
    expect(denied.body.error.message).toContain("set HF_TOKEN to a Hugging Face access token");
    env.HF_TOKEN = "hf_secret";
    expect((await api(server, "POST", "/api/models/pull", {})).status).toBe(202);
    expect(await ended(server)).toMatchObject({ state: "done" });
  });

  it("disk full before starting: says how much is needed and how much is free, and fetches nothing", async () => {
    const free = 1_000_000;
    const { hub, server, modelDir } = await setup({ pulls: { statfs: async () => ({ bavail: free / 1000, bsize: 1000 }) } });
    const { totalBytes } = (await api(server, "GET", "/api/models/pull/preview")).body;
    const response = await api(server, "POST", "/api/models/pull", {});
    expect(response.status).toBe(507);
    expect(response.body.error.code).toBe("disk_full");
    expect(response.body.error.message).toBe(
      `not enough disk space for the model: it needs ${formatBytes(totalBytes)} more, and 1.00 MB is free at ${modelDir}. ` +
        "Free some space, or set MASKFLOW_MODEL_DIR (or --models) to a disk with room, then pull again.",
    );
    expect(hub.requests.every((r) => r.path.startsWith("/api/"))).toBe(true);
    expect((await api(server, "GET", "/api/models/pull/preview")).body.freeBytes).toBe(free);
  });

  it.runIf(existsSync("/dev/full"))("disk full half-way (a real ENOSPC): the pull fails with disk_full and keeps what it fetched", async () => {
    const { server, modelDir } = await setup();
    await mkdir(path.join(modelDir, "unet"), { recursive: true });
    // Every write to /dev/full fails with ENOSPC: the big file's partial download is a link to it.
    await symlink("/dev/full", path.join(modelDir, `${BIG_FILE}.part`));
    expect((await api(server, "POST", "/api/models/pull", {})).status).toBe(202);
    const pull = await ended(server);
    expect(pull).toMatchObject({ state: "failed", errorCode: "disk_full" });
    expect(pull.error).toMatch(new RegExp(`^the disk is full \\(ENOSPC\\) while writing ${BIG_FILE.replace(".", "\\.")}: .* still to download, .* free at `));
    expect(existsSync(path.join(modelDir, "text_encoder/model.onnx"))).toBe(true);
  });

  it("a checksum mismatch: the file is fetched again; twice in a row fails with checksum_mismatch", async () => {
    const once = await setup({ behaviour: { corruptTimes: new Map([["vae_decoder/model.onnx", 1]]) } });
    expect((await api(once.server, "POST", "/api/models/pull", {})).status).toBe(202);
    expect(await ended(once.server)).toMatchObject({ state: "done" });
    expect(once.hub.contentRequests("vae_decoder/model.onnx")).toHaveLength(2);

    const always = await setup({ behaviour: { corrupt: new Set(["vae_decoder/model.onnx"]) } });
    expect((await api(always.server, "POST", "/api/models/pull", {})).status).toBe(202);
    const pull = await ended(always.server);
    expect(pull).toMatchObject({ state: "failed", errorCode: "checksum_mismatch" });
    expect(pull.error).toContain("vae_decoder/model.onnx: checksum mismatch");
    expect(existsSync(path.join(always.modelDir, "vae_decoder/model.onnx"))).toBe(false);
  });
});

describe("the pull routes are guarded like every route", () => {
  it("a cross-site POST cannot start a download", async () => {
    const { hub, server, pulls } = await setup();
    const response = await fetch(`${server.url}/api/models/pull`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: "https://evil.example" },
      body: "{}",
    });
    expect(response.status).toBe(403);
    expect(hub.requests).toEqual([]);
    expect(pulls.status).toBeNull();
  });

  it("with API keys, no key no pull", async () => {
    const { hub, server, pulls } = await setup({ apiKeys: ["the-key"] });
    expect((await api(server, "POST", "/api/models/pull", {})).status).toBe(401);
    expect((await api(server, "GET", "/api/models")).status).toBe(401);
    expect(hub.requests).toEqual([]);
    expect(pulls.status).toBeNull();
    const withKey = await fetch(`${server.url}/api/models`, { headers: { "x-api-key": "the-key" } });
    expect(withKey.status).toBe(200);
  });

  it("a bad body names the field and what it allows", async () => {
    const { server } = await setup();
    const response = await api(server, "POST", "/api/models/pull", { repo: "../etc", name: "a b" });
    expect(response.status).toBe(400);
    expect(response.body.error.message).toContain('repo: a hub repository id "org/name"');
    expect(response.body.error.message).toContain("name: a folder name");
    const extra = await api(server, "POST", "/api/models/pull", { url: "http://x" });
    expect(extra.status).toBe(400);
    expect(extra.body.error.message).toContain("url");
  });
});
