import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { HubClient } from "../server/models/hub-client.ts";
import { HubUnreachableError, unreachableError } from "../server/models/hub-errors.ts";
import { MANIFEST_NAME, readManifest } from "../server/models/model-manifest.ts";
import { BIG_FILE, BIG_FILE_SIZE, type FakeHub, type FakeHubBehaviour, SKIPPED_BY_PULL, startFakeHub } from "./helpers/fake-hub.ts";
import { runModelsCommand as models } from "./helpers/run-models-command.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const canIsolateNetwork = spawnSync("unshare", ["--net", "true"]).status === 0;

const hubs: FakeHub[] = [];
const folders: string[] = [];
afterEach(async () => {
  await Promise.all(hubs.splice(0).map((hub) => hub.close()));
  await Promise.all(folders.splice(0).map((folder) => rm(folder, { recursive: true, force: true })));
});

/** What a pull fetches: every file of the fake repository except the ones it must skip. */
const needed = (hub: FakeHub) => hub.files.map((f) => f.path).filter((p) => !(SKIPPED_BY_PULL as readonly string[]).includes(p)).sort();

async function setup(behaviour: FakeHubBehaviour = {}) {
  const hub = await startFakeHub({ behaviour });
  hubs.push(hub);
  const modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-models-"));
  folders.push(modelsDir);
  const modelDir = path.join(modelsDir, "tiny-inpaint-onnx");
  return { hub, modelsDir, modelDir };
}

const pullArgs = (hub: FakeHub, modelsDir: string, ...extra: string[]) => ["pull", hub.repo, "--models", modelsDir, ...extra];
const env = (hub: FakeHub, token?: string) => ({ HF_ENDPOINT: hub.url, ...(token ? { HF_TOKEN: token } : {}) });

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join("/")).sort();
}

describe("maskflow models pull", () => {
  it("downloads only the ONNX pipeline files, verified, with a manifest, following tree pages and redirects", async () => {
    const { hub, modelsDir, modelDir } = await setup({ pageSize: 4 });
    const result = await models(pullArgs(hub, modelsDir), { env: env(hub) });
    expect(result.stderr).not.toContain("maskflow models pull:");
    expect(result.code).toBe(0);
    const NEEDED = needed(hub);
    expect(NEEDED).toContain(BIG_FILE);
    expect(NEEDED).toContain("tokenizer/vocab.json");
    expect(await filesUnder(modelDir)).toEqual([MANIFEST_NAME, ...NEEDED].sort());
    for (const file of hub.files.filter((f) => NEEDED.includes(f.path))) {
      expect((await readFile(path.join(modelDir, file.path))).equals(file.content)).toBe(true);
    }
    const manifest = await readManifest(modelDir);
    expect(manifest).toMatchObject({ repo: hub.repo, revision: "main", commit: hub.commit });
    expect(manifest!.files.map((f) => f.path).sort()).toEqual(NEEDED);
    expect(manifest!.files.find((f) => f.path === BIG_FILE)!.size).toBe(BIG_FILE_SIZE);
    // Nothing skipped was even requested.
    expect(hub.requests.some((r) => r.path.includes("safety_checker") || r.path.includes("safetensors"))).toBe(false);
    expect(hub.requests.filter((r) => r.path.includes("/tree/")).length).toBe(Math.ceil(hub.files.length / 4));
  });

  it("a second pull of a complete model downloads nothing", async () => {
    const { hub, modelsDir } = await setup();
    expect((await models(pullArgs(hub, modelsDir), { env: env(hub) })).code).toBe(0);
    const before = hub.requests.length;
    const again = await models(pullArgs(hub, modelsDir), { env: env(hub) });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("(0 B downloaded)");
    expect(hub.requests.slice(before).every((r) => r.path.startsWith("/api/"))).toBe(true);
  });

  it("names HF_TOKEN on 401 and sends the token as a bearer header", async () => {
    const { hub, modelsDir, modelDir } = await setup({ requireToken: "hf_secret" });
    const denied = await models(pullArgs(hub, modelsDir), { env: env(hub) });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/401/);
    expect(denied.stderr).toContain("HF_TOKEN");
    expect(existsSync(path.join(modelDir, MANIFEST_NAME))).toBe(false);

    const allowed = await models(pullArgs(hub, modelsDir), { env: env(hub, "hf_secret") });
    expect(allowed.code).toBe(0);
    expect(hub.requests.filter((r) => r.status !== 401).every((r) => r.authorization === "Bearer hf_secret")).toBe(true);
  });

  it("says the repository or revision was not found on 404", async () => {
    const { hub, modelsDir } = await setup({ notFound: true });
    const result = await models(pullArgs(hub, modelsDir), { env: env(hub) });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/not found \(HTTP 404\)/);
    expect(hub.requests.length).toBe(1);

    hub.behaviour.notFound = false;
    const badRevision = await models(pullArgs(hub, modelsDir, "--revision", "no-such-branch"), { env: env(hub) });
    expect(badRevision.code).toBe(1);
    expect(badRevision.stderr).toContain("revision not found");
  });

  it("retries 500s with backoff and then succeeds; gives up after the bounded attempts", async () => {
    const { hub, modelsDir } = await setup({ failures: 3 });
    const result = await models(pullArgs(hub, modelsDir), { env: env(hub), maxAttempts: 5 });
    expect(result.code).toBe(0);
    expect(hub.requests.filter((r) => r.status === 500).length).toBe(3);
    expect(result.stderr).toMatch(/HTTP 500; retry 3 in/);

    hub.behaviour.failures = 10;
    const failing = await models(pullArgs(hub, modelsDir), { env: env(hub), maxAttempts: 2 });
    expect(failing.code).toBe(1);
    expect(failing.stderr).toContain("after 2 attempts");
    expect(hub.behaviour.failures).toBe(8);
  });

  it("resumes a dropped download with Range, fetching only the remainder", async () => {
    const { hub, modelsDir, modelDir } = await setup({ dropConnection: { path: BIG_FILE, afterBytes: 1024 * 1024, times: 1 } });
    const first = await models(pullArgs(hub, modelsDir), { env: env(hub), maxAttempts: 1 });
    expect(first.code).toBe(1);
    expect(first.stderr).toContain("re-run to resume");
    const part = path.join(modelDir, `${BIG_FILE}.part`);
    const kept = (await stat(part)).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(BIG_FILE_SIZE);
    expect(existsSync(path.join(modelDir, BIG_FILE))).toBe(false);
    expect(existsSync(path.join(modelDir, MANIFEST_NAME))).toBe(false);
    const listed = await models(["list", "--models", modelsDir], { env: {} });
    expect(listed.stdout).toMatch(/tiny-inpaint-onnx\s+incomplete/);

    const before = hub.requests.length;
    const second = await models(pullArgs(hub, modelsDir), { env: env(hub) });
    expect(second.code).toBe(0);
    const content = hub.contentRequests(BIG_FILE).filter((r) => hub.requests.indexOf(r) >= before);
    expect(content).toHaveLength(1);
    expect(content[0].range).toBe(`bytes=${kept}-`);
    expect(content[0].status).toBe(206);
    expect(content[0].bytesSent).toBe(BIG_FILE_SIZE - kept);
    // Files finished by the first pull are verified on disk, not fetched again.
    expect(hub.contentRequests("text_encoder/model.onnx").filter((r) => hub.requests.indexOf(r) >= before)).toHaveLength(0);
    const expected = hub.files.find((f) => f.path === BIG_FILE)!.content;
    expect((await readFile(path.join(modelDir, BIG_FILE))).equals(expected)).toBe(true);
    expect(existsSync(part)).toBe(false);
    expect(second.stdout).toContain(`files, `);
  });

  it("resumes within one pull when retries remain", async () => {
    const { hub, modelsDir, modelDir } = await setup({ dropConnection: { path: BIG_FILE, afterBytes: 512 * 1024, times: 1 } });
    const result = await models(pullArgs(hub, modelsDir), { env: env(hub), maxAttempts: 3 });
    expect(result.code).toBe(0);
    const content = hub.contentRequests(BIG_FILE);
    expect(content).toHaveLength(2);
    expect(content[0].range).toBeUndefined();
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(content[1].range ?? "")?.[1]);
    // What reached the client before the drop (at most what the server wrote) is kept; only the rest is sent again.
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(content[0].bytesSent);
    expect(content[1].bytesSent).toBe(BIG_FILE_SIZE - resumedAt);
    expect((await readFile(path.join(modelDir, BIG_FILE))).equals(hub.files.find((f) => f.path === BIG_FILE)!.content)).toBe(true);
  });

  it("starts the file over when the server ignores Range and answers 200", async () => {
    const { hub, modelsDir, modelDir } = await setup({ dropConnection: { path: BIG_FILE, afterBytes: 1024 * 1024, times: 1 } });
    expect((await models(pullArgs(hub, modelsDir), { env: env(hub), maxAttempts: 1 })).code).toBe(1);
    hub.behaviour.ignoreRange = true;
    const before = hub.requests.length;
    const result = await models(pullArgs(hub, modelsDir), { env: env(hub) });
    expect(result.code).toBe(0);
    const [request] = hub.contentRequests(BIG_FILE).filter((r) => hub.requests.indexOf(r) >= before);
    expect(request.range).toMatch(/^bytes=/);
    expect(request.status).toBe(200);
    expect(request.bytesSent).toBe(BIG_FILE_SIZE);
    expect((await readFile(path.join(modelDir, BIG_FILE))).equals(hub.files.find((f) => f.path === BIG_FILE)!.content)).toBe(true);
  });

  it("fetches a file again after one checksum mismatch, and keeps the good copy", async () => {
    const { hub, modelsDir, modelDir } = await setup({ corruptTimes: new Map([["vae_decoder/model.onnx", 1]]) });
    const result = await models(pullArgs(hub, modelsDir), { env: env(hub) });
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/vae_decoder\/model\.onnx: checksum mismatch \(expected sha256 [0-9a-f]{64}, got [0-9a-f]{64}\); fetching the file again/);
    const requests = hub.contentRequests("vae_decoder/model.onnx");
    expect(requests).toHaveLength(2);
    // From the start: the corrupt copy was deleted, nothing of it is resumed.
    expect(requests[1].range).toBeUndefined();
    const expected = hub.files.find((f) => f.path === "vae_decoder/model.onnx")!.content;
    expect((await readFile(path.join(modelDir, "vae_decoder/model.onnx"))).equals(expected)).toBe(true);
    expect(existsSync(path.join(modelDir, MANIFEST_NAME))).toBe(true);
  });

  it("rejects a file whose sha256 does not match twice and keeps nothing of it", async () => {
    const { hub, modelsDir, modelDir } = await setup({ corrupt: new Set(["vae_decoder/model.onnx"]) });
    const result = await models(pullArgs(hub, modelsDir), { env: env(hub) });
    expect(result.code).toBe(1);
    expect(hub.contentRequests("vae_decoder/model.onnx")).toHaveLength(2);
    expect(result.stderr).toContain("vae_decoder/model.onnx: checksum mismatch");
    expect(result.stderr).toContain("the file was removed after a second fetch, re-run to retry");
    expect(existsSync(path.join(modelDir, "vae_decoder/model.onnx"))).toBe(false);
    expect(existsSync(path.join(modelDir, "vae_decoder/model.onnx.part"))).toBe(false);
    expect(existsSync(path.join(modelDir, MANIFEST_NAME))).toBe(false);
  });

  it("checks small git-stored files against their git blob id", async () => {
    const { hub, modelsDir, modelDir } = await setup({ corrupt: new Set(["tokenizer/vocab.json"]) });
    const result = await models(pullArgs(hub, modelsDir), { env: env(hub) });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("tokenizer/vocab.json: checksum mismatch (expected git oid");
    expect(existsSync(path.join(modelDir, "tokenizer/vocab.json"))).toBe(false);
  });

  it("fetches model_index.json last, so a half-pulled folder never looks like a model to the engine", async () => {
    const { hub, modelsDir } = await setup();
    expect((await models(pullArgs(hub, modelsDir), { env: env(hub) })).code).toBe(0);
    const fetched = hub.requests.filter((r) => r.status === 200 && !r.path.startsWith("/api/")).map((r) => r.path);
    expect(fetched.at(-1)).toMatch(/\/model_index\.json$/);
    expect(fetched.filter((p) => p.endsWith("/model_index.json"))).toHaveLength(1);
  });

  // A real ENOSPC from a real write, without mounting anything: the partial file of the big download is a link to
  // /dev/full, where every write fails with ENOSPC. The files before it are written normally.
  it.runIf(existsSync("/dev/full"))("says the disk is full, how much is still needed and how much is free, when a write fails with ENOSPC", async () => {
    const { hub, modelsDir, modelDir } = await setup();
    await mkdir(path.join(modelDir, "unet"), { recursive: true });
    await symlink("/dev/full", path.join(modelDir, `${BIG_FILE}.part`));
    const result = await models(pullArgs(hub, modelsDir), { env: env(hub) });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(`^maskflow models pull: the disk is full \\(ENOSPC\\) while writing ${BIG_FILE.replace(".", "\\.")}: [\\d.]+ MB still to download, [\\d.]+ [KMGT]?B free at ${modelDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\. Free some space and pull again: what was fetched is kept and the pull resumes\\.\n$`, "m"),
    );
    // Not retried: a full disk stays full.
    expect(result.stderr).not.toContain("retry");
    expect(hub.contentRequests(BIG_FILE)).toHaveLength(1);
    expect(existsSync(path.join(modelDir, "text_encoder/model.onnx"))).toBe(true);
  });

  it("honours --name and MASKFLOW_MODELS_DIR", async () => {
    const { hub, modelsDir } = await setup();
    const result = await models(["pull", hub.repo, "--name", "my-model"], { env: { ...env(hub), MASKFLOW_MODELS_DIR: modelsDir } });
    expect(result.code).toBe(0);
    expect(existsSync(path.join(modelsDir, "my-model", MANIFEST_NAME))).toBe(true);
    expect((await models(["pull", hub.repo, "--name", "../escape"], { env: env(hub) })).code).toBe(2);
  });
});

describe("maskflow models pull without a reachable hub", () => {
  /** A loopback port nothing listens on: bound by us, then closed. */
  async function closedPort(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    return port;
  }

  // A machine without network, for real: the CLI runs in a fresh network namespace (no interfaces, no route, no
  // resolver reachable), so the lookup fails at once and no packet leaves this machine. Needs root and unshare.
  it.runIf(canIsolateNetwork)("with no network at all, gives up at the first DNS failure, naming the hub and HF_ENDPOINT", async () => {
    const modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-models-"));
    folders.push(modelsDir);
    const env = { ...process.env };
    delete env.HF_ENDPOINT;
    const result = spawnSync("unshare", ["--net", process.execPath, "bin/maskflow.js", "models", "pull", "org/repo", "--models", modelsDir], {
      cwd: repoRoot,
      env,
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(
      /^maskflow models pull: cannot reach the model hub at https:\/\/huggingface\.co \(DNS lookup (failed|for huggingface\.co got no answer)[^)]*\): check the network, or set HF_ENDPOINT to a mirror\n$/m,
    );
    // One attempt: the CLI prints a line for every retry, and there is none.
    expect(result.stderr).not.toContain("retry");
    expect(result.stderr).not.toContain("fetch failed");
    expect(existsSync(path.join(modelsDir, "repo"))).toBe(false);
  });

  it("gives up at the first refused connection", async () => {
    const port = await closedPort();
    const retries: string[] = [];
    const client = new HubClient({ endpoint: `http://127.0.0.1:${port}`, maxAttempts: 5, retryDelayMs: 1, onRetry: ({ reason }) => retries.push(reason) });
    const error = await client.resolveRevision("org/repo", "main").then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(HubUnreachableError);
    expect((error as Error).message).toBe(
      `cannot reach the model hub at http://127.0.0.1:${port} (connection refused by 127.0.0.1:${port}): check the network, and HF_ENDPOINT (set to http://127.0.0.1:${port})`,
    );
    expect(retries).toEqual([]);

    const modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-models-"));
    folders.push(modelsDir);
    const result = await models(["pull", "org/repo", "--models", modelsDir], { env: { HF_ENDPOINT: `http://127.0.0.1:${port}` }, maxAttempts: 5 });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`(connection refused by 127.0.0.1:${port})`);
    expect(result.stderr).not.toContain("retry");
  });

  it("without HF_ENDPOINT, suggests setting it to a mirror", () => {
    const message = unreachableError("https://huggingface.co", false, { code: "ENOTFOUND", detail: "DNS lookup failed for huggingface.co" }).message;
    expect(message).toBe("cannot reach the model hub at https://huggingface.co (DNS lookup failed for huggingface.co): check the network, or set HF_ENDPOINT to a mirror");
  });

  it("still retries a hub that answers 500, then reports the attempts (not an unreachable hub)", async () => {
    const { hub, modelsDir } = await setup({ failures: 10 });
    const result = await models(pullArgs(hub, modelsDir), { env: env(hub), maxAttempts: 3 });
    expect(result.code).toBe(1);
    expect(result.stderr.match(/; retry \d in/g)).toHaveLength(2);
    expect(result.stderr).not.toContain("cannot reach");
    expect(hub.requests).toHaveLength(3);
  });
});
