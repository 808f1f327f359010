/**
 * Pulling the model through the server (what the editor's Download model button does), against the fake hub
 * on 127.0.0.1 posing as the default repository (the SD 1.5 inpainting diffusers folder at its pinned commit,
 * served as the tiny checkpoint): the preview of what is fetched, its size and folder and that it is built,
 * progress as `model_pull` WebSocket events through the download and then the build, the engine taking the
 * model without a restart, cancel and resume (in the download and in the build), one pull at a time, the errors
 * a user can act on, an ONNX export pulled by name as it is, and the guards every route has (key, Origin).
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createEngines, type Engines } from "../server/engines/create-engines.ts";
import { DEFAULT_MODEL_REPO, DEFAULT_MODEL_REVISION } from "../server/models/default-model.ts";
import { formatBytes } from "../server/models/format-bytes.ts";
import { MANIFEST_NAME, readManifest } from "../server/models/model-manifest.ts";
import { ModelPullService, type ModelPullServiceOptions, type ModelPullStatus } from "../server/models/model-pull-service.ts";
import { type FakeCheckpointRepo, makeFakeCheckpointRepo } from "./helpers/fake-checkpoint-repo.ts";
import { FAKE_REPO, type FakeHub, type FakeHubBehaviour, startFakeHub } from "./helpers/fake-hub.ts";
import { api, startTestServer, type TestServer } from "./helpers/test-server.ts";
import { connectClient } from "./helpers/ws-client.ts";

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The largest download of the checkpoint (the text encoder's fp16 weights): big enough to cancel mid-file. */
const BIG_FILE = "text_encoder/model.fp16.safetensors";

interface Setup {
  hub: FakeHub;
  checkpoint: FakeCheckpointRepo;
  modelsDir: string;
  /** Where the engine looks for its model (models/sd15-inpainting), missing at first. */
  modelDir: string;
  /** Where the default pull keeps the checkpoint it builds the model from. */
  downloadDir: string;
  engines: Engines;
  pulls: ModelPullService;
  server: TestServer;
  env: NodeJS.ProcessEnv;
}

/**
 * A server like `maskflow serve` on a fresh install: no model, the fake hub posing as the default repository at
 * its pinned commit (or, with onnx, serving an ONNX export as fake-org/tiny-inpaint-onnx).
 */
async function setup(
  options: { behaviour?: FakeHubBehaviour; endpoint?: string; pulls?: Partial<ModelPullServiceOptions>; apiKeys?: string[]; onnx?: boolean } = {},
): Promise<Setup> {
  const checkpoint = await makeFakeCheckpointRepo();
  const hub = options.onnx
    ? await startFakeHub({ behaviour: options.behaviour })
    : await startFakeHub({ files: checkpoint.files, behaviour: options.behaviour, repo: DEFAULT_MODEL_REPO, commit: DEFAULT_MODEL_REVISION });
  cleanups.push(() => hub.close());
  const root = await mkdtemp(path.join(os.tmpdir(), "maskflow-pull-api-"));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const modelsDir = path.join(root, "models");
  const modelDir = path.join(modelsDir, "sd15-inpainting");
  const downloadDir = path.join(modelsDir, ".downloads", "sd15-inpainting");
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
  return { hub, checkpoint, modelsDir, modelDir, downloadDir, engines, pulls, server, env };
}

/** Folders a build writes aside before renaming them into place (.NAME.partial-…). */
async function halfBuilt(modelsDir: string): Promise<string[]> {
  return (await readdir(modelsDir)).filter((entry) => entry.includes(".partial-"));
}

/** Bytes of the checkpoint files a pull fetches before `file` (its order: by path, model_index.json last). */
function bytesBefore(setup: Setup, file: string): number {
  return setup.checkpoint.expected
    .filter((p) => p !== "model_index.json" && p.localeCompare(file) < 0)
    .reduce((sum, p) => sum + setup.hub.files.find((f) => f.path === p)!.content.length, 0);
}

/** The pull's status, asked until it has ended (bounded). */
async function ended(server: TestServer): Promise<ModelPullStatus> {
  for (let i = 0; i < 600; i++) {
    const { body } = await api(server, "GET", "/api/models/pull");
    if (body.pull && !["planning", "downloading", "building"].includes(body.pull.state)) return body.pull;
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
  it("shows what it fetches, its size and folder, and that it builds; downloads then builds with model_pull events; lists it; the engine has it without a restart", async () => {
    const { hub, checkpoint, server, modelDir, downloadDir, modelsDir } = await setup({ behaviour: { bytesPerSecond: 8 * 1024 * 1024 } });
    const before = await api(server, "GET", "/api/models");
    expect(before.status).toBe(200);
    expect(before.body).toMatchObject({ models: [], pull: null, defaultModelDir: modelDir });
    expect((await api(server, "GET", "/api/system")).body.engines.local).toMatchObject({ installed: false, defaultModelDir: modelDir });

    // What the Download button shows: the files a pull takes at the pinned commit, their size, where they go, and the build.
    const preview = await api(server, "GET", "/api/models/pull/preview");
    expect(preview.status).toBe(200);
    const wanted = hub.files.filter((f) => checkpoint.expected.includes(f.path));
    const totalBytes = wanted.reduce((sum, f) => sum + f.content.length, 0);
    const fp16Bytes = hub.files.filter((f) => f.path.endsWith(".fp16.safetensors") && !f.path.startsWith("safety_checker/")).reduce((sum, f) => sum + f.content.length, 0);
    expect(preview.body).toMatchObject({
      repo: DEFAULT_MODEL_REPO,
      revision: DEFAULT_MODEL_REVISION,
      commit: DEFAULT_MODEL_REVISION,
      name: "sd15-inpainting",
      modelDir,
      builds: true,
      downloadDir,
      totalBytes,
      neededBytes: totalBytes,
      // The build writes the fp16 weights as fp32 graphs: about twice their size.
      buildBytes: 2 * fp16Bytes,
      fileCount: wanted.length,
    });
    expect(preview.body.files).toEqual([...checkpoint.expected.filter((p) => p !== "model_index.json"), "model_index.json"]);
    expect(preview.body.files).not.toContain("safety_checker/model.fp16.safetensors");
    expect(preview.body.freeBytes).toBeGreaterThan(totalBytes);
    // Asking fetched no file.
    expect(hub.requests.every((r) => r.path.startsWith("/api/"))).toBe(true);

    const socket = await connectClient(server.url, "watcher");
    cleanups.push(() => socket.close());
    const started = await api(server, "POST", "/api/models/pull", {});
    expect(started.status).toBe(202);
    expect(started.body.pull).toMatchObject({ repo: DEFAULT_MODEL_REPO, revision: DEFAULT_MODEL_REVISION, modelDir, builds: true, downloadDir, totalBytes, fileCount: wanted.length });
    await socket.waitFor((m) => m.type === "model_pull" && m.data.state === "done", 60_000);

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
    // Then the build, after the last download event: which graph is written, how far.
    const building = events.filter((e) => e.state === "building");
    expect(events.findIndex((e) => e.state === "building")).toBeGreaterThan(events.findLastIndex((e) => e.state === "downloading"));
    expect(building.every((e) => e.bytes === totalBytes && e.secondsLeft === null && e.build !== null)).toBe(true);
    const labels = building.map((e) => e.build!.label);
    for (const part of ["text_encoder", "unet", "vae_encoder", "vae_decoder"]) expect(labels.some((label) => label.startsWith(`building ${part} `)), part).toBe(true);
    expect(events.at(-1)).toMatchObject({ state: "done", bytes: totalBytes, secondsLeft: null, filesDone: wanted.length });

    // Listed as built from the pinned commit; the downloads folder is no model of its own.
    const after = await api(server, "GET", "/api/models");
    expect(after.body.models).toHaveLength(1);
    expect(after.body.models[0]).toMatchObject({ name: "sd15-inpainting", modelDir, kind: "built", status: "complete", repo: DEFAULT_MODEL_REPO, commit: DEFAULT_MODEL_REVISION, builtFrom: downloadDir, problems: [] });
    expect(after.body.pull).toMatchObject({ state: "done" });
    expect((await api(server, "GET", "/api/system")).body.engines.local).toMatchObject({ installed: true, defaultModelDir: modelDir });
    expect(await readManifest(downloadDir)).toMatchObject({ repo: DEFAULT_MODEL_REPO, commit: DEFAULT_MODEL_REVISION });
    expect(await halfBuilt(modelsDir)).toEqual([]);

    // A second pull fetches nothing and builds nothing; the preview says so.
    const again = await api(server, "GET", "/api/models/pull/preview");
    expect(again.body).toMatchObject({ neededBytes: 0, buildBytes: 0 });
    const stamp = await stat(path.join(modelDir, ".maskflow-build.json"));
    const requests = hub.requests.length;
    expect((await api(server, "POST", "/api/models/pull", {})).status).toBe(202);
    expect(await ended(server)).toMatchObject({ state: "done" });
    expect(hub.requests.slice(requests).every((r) => r.path.startsWith("/api/"))).toBe(true);
    expect((await stat(path.join(modelDir, ".maskflow-build.json"))).mtimeMs).toBe(stamp.mtimeMs);
  }, 90_000);

  it("an ONNX export named by repository, into a named folder, as it is: the engine without a model of its own switches to it", async () => {
    const { server, modelsDir, engines } = await setup({ onnx: true });
    const preview = await api(server, "GET", "/api/models/pull/preview?repo=" + encodeURIComponent(FAKE_REPO) + "&name=tiny");
    expect(preview.body).toMatchObject({ repo: FAKE_REPO, revision: "main", builds: false, downloadDir: null, buildBytes: 0 });
    const started = await api(server, "POST", "/api/models/pull", { repo: FAKE_REPO, name: "tiny" });
    expect(started.status).toBe(202);
    expect(started.body.pull.modelDir).toBe(path.join(modelsDir, "tiny"));
    expect(await ended(server)).toMatchObject({ state: "done", builds: false, build: null });
    expect(existsSync(path.join(modelsDir, "tiny", MANIFEST_NAME))).toBe(true);
    expect(existsSync(path.join(modelsDir, ".downloads"))).toBe(false);
    expect((await api(server, "GET", "/api/models")).body.models).toEqual([expect.objectContaining({ name: "tiny", kind: "pulled", repo: FAKE_REPO })]);
    expect(engines.local.defaultModelDir).toBe(path.join(modelsDir, "tiny"));
    expect((await api(server, "GET", "/api/system")).body.engines.local).toMatchObject({ installed: true, defaultModelDir: path.join(modelsDir, "tiny") });
  });

  it("cancel keeps what was fetched, and the next pull resumes it with a Range request", async () => {
    const context = await setup({ behaviour: { bytesPerSecond: 1024 * 1024 } });
    const { hub, server, modelDir, downloadDir, modelsDir } = context;
    const bigSize = hub.files.find((f) => f.path === BIG_FILE)!.content.length;
    const socket = await connectClient(server.url, "watcher");
    cleanups.push(() => socket.close());
    expect((await api(server, "POST", "/api/models/pull", {})).status).toBe(202);
    await socket.waitFor((m) => m.type === "model_pull" && m.data.file === BIG_FILE && m.data.bytes > bytesBefore(context, BIG_FILE) + 100_000, 30_000);
    // One at a time.
    const second = await api(server, "POST", "/api/models/pull", {});
    expect(second.status).toBe(409);
    expect(second.body.error.code).toBe("pull_running");

    const cancelled = await api(server, "DELETE", "/api/models/pull");
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.pull).toMatchObject({ state: "cancelled", secondsLeft: null, build: null });
    await socket.waitFor((m) => m.type === "model_pull" && m.data.state === "cancelled");
    const part = path.join(downloadDir, `${BIG_FILE}.part`);
    const kept = (await stat(part)).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(bigSize);
    expect(existsSync(path.join(downloadDir, "model_index.json"))).toBe(false);
    expect(existsSync(modelDir)).toBe(false);
    expect((await api(server, "GET", "/api/system")).body.engines.local.installed).toBe(false);
    // The downloads folder is no model: nothing is listed, broken or otherwise.
    expect((await api(server, "GET", "/api/models")).body.models).toEqual([]);
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
    expect(content[0].bytesSent).toBe(bigSize - kept);
    expect(hub.contentRequests("text_encoder/config.json").filter((r) => hub.requests.indexOf(r) >= before)).toHaveLength(0);
    expect(existsSync(path.join(downloadDir, MANIFEST_NAME))).toBe(true);
    expect(existsSync(path.join(modelDir, "model_index.json"))).toBe(true);
    expect(await halfBuilt(modelsDir)).toEqual([]);
  }, 60_000);

  it("cancel during the build leaves no half-built folder; the downloads stay, and the next pull builds from them without fetching", async () => {
    const { hub, server, modelDir, downloadDir, modelsDir } = await setup();
    const socket = await connectClient(server.url, "watcher");
    cleanups.push(() => socket.close());
    expect((await api(server, "POST", "/api/models/pull", {})).status).toBe(202);
    // The build's first report from its worker thread: it is under way.
    const building = await socket.waitFor((m) => m.type === "model_pull" && m.data.state === "building" && m.data.build?.label !== "starting the build", 30_000);
    expect(building.data.build.label).toMatch(/^(reading checkpoint|building (text_encoder|unet|vae_encoder|vae_decoder)) \d+ %$/);
    const cancelled = await api(server, "DELETE", "/api/models/pull");
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.pull).toMatchObject({ state: "cancelled", builds: true });
    expect(cancelled.body.pull.build).not.toBeNull();
    expect(existsSync(modelDir)).toBe(false);
    expect(await halfBuilt(modelsDir)).toEqual([]);
    expect(await readManifest(downloadDir)).toMatchObject({ commit: DEFAULT_MODEL_REVISION });
    expect((await api(server, "GET", "/api/system")).body.engines.local.installed).toBe(false);

    const before = hub.requests.length;
    expect((await api(server, "POST", "/api/models/pull", {})).status).toBe(202);
    expect(await ended(server)).toMatchObject({ state: "done" });
    expect(hub.requests.slice(before).every((r) => r.path.startsWith("/api/"))).toBe(true);
    expect(existsSync(path.join(modelDir, ".maskflow-build.json"))).toBe(true);
    expect((await api(server, "GET", "/api/system")).body.engines.local.installed).toBe(true);
  }, 60_000);
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

  it("disk full before starting: says how much is needed (the download and the build) and how much is free, and fetches nothing", async () => {
    const free = 1_000_000;
    const { hub, server, modelDir } = await setup({ pulls: { statfs: async () => ({ bavail: free / 1000, bsize: 1000 }) } });
    const { totalBytes, buildBytes } = (await api(server, "GET", "/api/models/pull/preview")).body;
    expect(buildBytes).toBeGreaterThan(0);
    const response = await api(server, "POST", "/api/models/pull", {});
    expect(response.status).toBe(507);
    expect(response.body.error.code).toBe("disk_full");
    expect(response.body.error.message).toBe(
      `not enough disk space for the model: it needs ${formatBytes(totalBytes + buildBytes)} more, and 1.00 MB is free at ${modelDir}. ` +
        "Free some space, or set MASKFLOW_MODEL_DIR (or --models) to a disk with room, then pull again.",
    );
    expect(hub.requests.every((r) => r.path.startsWith("/api/"))).toBe(true);
    expect((await api(server, "GET", "/api/models/pull/preview")).body.freeBytes).toBe(free);
  });

  it.runIf(existsSync("/dev/full"))("disk full half-way (a real ENOSPC): the pull fails with disk_full and keeps what it fetched", async () => {
    const { server, modelDir, downloadDir } = await setup();
    await mkdir(path.join(downloadDir, "text_encoder"), { recursive: true });
    // Every write to /dev/full fails with ENOSPC: the big file's partial download is a link to it.
    await symlink("/dev/full", path.join(downloadDir, `${BIG_FILE}.part`));
    expect((await api(server, "POST", "/api/models/pull", {})).status).toBe(202);
    const pull = await ended(server);
    expect(pull).toMatchObject({ state: "failed", errorCode: "disk_full" });
    expect(pull.error).toMatch(new RegExp(`^the disk is full \\(ENOSPC\\) while writing ${BIG_FILE.replace(/\./g, "\\.")}: .* still to download, .* free at `));
    expect(existsSync(path.join(downloadDir, "text_encoder/config.json"))).toBe(true);
    expect(existsSync(modelDir)).toBe(false);
  });

  it("a checksum mismatch: the file is fetched again; twice in a row fails with checksum_mismatch and nothing is built", async () => {
    const VAE = "vae/diffusion_pytorch_model.fp16.safetensors";
    const once = await setup({ behaviour: { corruptTimes: new Map([[VAE, 1]]) } });
    expect((await api(once.server, "POST", "/api/models/pull", {})).status).toBe(202);
    expect(await ended(once.server)).toMatchObject({ state: "done" });
    expect(once.hub.contentRequests(VAE)).toHaveLength(2);

    const always = await setup({ behaviour: { corrupt: new Set([VAE]) } });
    expect((await api(always.server, "POST", "/api/models/pull", {})).status).toBe(202);
    const pull = await ended(always.server);
    expect(pull).toMatchObject({ state: "failed", errorCode: "checksum_mismatch", build: null });
    expect(pull.error).toContain(`${VAE}: checksum mismatch`);
    expect(existsSync(path.join(always.downloadDir, VAE))).toBe(false);
    expect(existsSync(path.join(always.downloadDir, MANIFEST_NAME))).toBe(false);
    expect(existsSync(always.modelDir)).toBe(false);
    expect(await halfBuilt(always.modelsDir)).toEqual([]);
  }, 60_000);

  it("a model folder that no build made is not built over: 409 folder_taken, and nothing is fetched", async () => {
    const { hub, server, modelDir } = await setup();
    await mkdir(modelDir, { recursive: true });
    await writeFile(path.join(modelDir, "model_index.json"), "{}\n");
    const response = await api(server, "POST", "/api/models/pull", {});
    expect(response.status).toBe(409);
    expect(response.body.error.code).toBe("folder_taken");
    expect(response.body.error.message).toContain(`${modelDir} already holds a model that no checkpoint build made`);
    expect(hub.requests.every((r) => r.path.startsWith("/api/"))).toBe(true);
    expect(await readdir(modelDir)).toEqual(["model_index.json"]);
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
