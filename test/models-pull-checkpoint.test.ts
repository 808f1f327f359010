/**
 * `maskflow models pull` with no repository: the canonical SD 1.5 inpainting weights (a diffusers folder at a pinned
 * commit) are downloaded — only the files the build needs, fp16 where published, each verified against the hub's
 * listing — into models/.downloads/sd15-inpainting, then BUILT into Maskflow's ONNX graphs in models/sd15-inpainting,
 * which runs. Against the fake hub posing as stable-diffusion-v1-5/stable-diffusion-inpainting at the pinned commit,
 * serving the tiny checkpoint's diffusers folder with the real repository's layout.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_MODEL_REPO, DEFAULT_MODEL_REVISION } from "../server/models/default-model.ts";
import { MANIFEST_NAME, readManifest } from "../server/models/model-manifest.ts";
import { type FakeCheckpointComponent, makeFakeCheckpointRepo } from "./helpers/fake-checkpoint-repo.ts";
import { type FakeHub, type FakeHubBehaviour, startFakeHub } from "./helpers/fake-hub.ts";
import { loadDiffusersCases, runDiffusersCases } from "./helpers/diffusers-e2e-cases.ts";
import { runModelsCommand as models } from "./helpers/run-models-command.ts";

const repoRoot = path.resolve(import.meta.dirname, "..");
const CASES = path.resolve(import.meta.dirname, "fixtures/checkpoint-parity/inpaint-cases");

const hubs: FakeHub[] = [];
const folders: string[] = [];
afterEach(async () => {
  await Promise.all(hubs.splice(0).map((hub) => hub.close()));
  await Promise.all(folders.splice(0).map((folder) => rm(folder, { recursive: true, force: true })));
});

const sha256 = (content: Buffer) => createHash("sha256").update(content).digest("hex");

async function setup(options: { behaviour?: FakeHubBehaviour; fp16?: readonly FakeCheckpointComponent[]; repo?: string } = {}) {
  const checkpoint = await makeFakeCheckpointRepo({ fp16: options.fp16 });
  const pinned = options.repo === undefined;
  const hub = await startFakeHub({
    files: checkpoint.files,
    behaviour: options.behaviour,
    repo: options.repo ?? DEFAULT_MODEL_REPO,
    ...(pinned ? { commit: DEFAULT_MODEL_REVISION } : {}),
  });
  hubs.push(hub);
  const modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-pull-checkpoint-"));
  folders.push(modelsDir);
  const name = options.repo ? options.repo.split("/")[1] : "sd15-inpainting";
  return {
    hub,
    checkpoint,
    modelsDir,
    modelDir: path.join(modelsDir, name),
    downloadDir: path.join(modelsDir, ".downloads", name),
    env: { HF_ENDPOINT: hub.url },
  };
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join("/")).sort();
}

/** Folders a build writes aside before renaming them into place (.NAME.partial-…), left in the models folder. */
async function halfBuilt(modelsDir: string): Promise<string[]> {
  return (await readdir(modelsDir)).filter((entry) => entry.includes(".partial-"));
}

const stampOf = async (modelDir: string) => JSON.parse(await readFile(path.join(modelDir, ".maskflow-build.json"), "utf8"));

describe("maskflow models pull (the default: a checkpoint, downloaded then built)", () => {
  it("fetches only the files the build needs, fp16 first, each verified against the pinned commit's listing, and builds a model that runs", async () => {
    const { hub, checkpoint, modelsDir, modelDir, downloadDir, env } = await setup({ behaviour: { pageSize: 5 } });
    const result = await models(["pull", "--models", modelsDir], { env });
    expect(result.stderr).not.toContain("maskflow models pull:");
    expect(result.code).toBe(0);

    // The downloads: exactly the expected files (fp16 weights, configs, tokenizer, scheduler), byte for byte.
    expect(checkpoint.expected).toContain("unet/diffusion_pytorch_model.fp16.safetensors");
    expect(await filesUnder(downloadDir)).toEqual([MANIFEST_NAME, ...checkpoint.expected].sort());
    for (const file of hub.files.filter((f) => checkpoint.expected.includes(f.path))) {
      expect((await readFile(path.join(downloadDir, file.path))).equals(file.content), file.path).toBe(true);
    }
    // Nothing else was requested: no safety checker, feature extractor, fp32 twin, .bin or .ckpt.
    for (const file of hub.files.filter((f) => !checkpoint.expected.includes(f.path))) {
      expect(hub.contentRequests(file.path), file.path).toHaveLength(0);
    }
    expect(hub.requests.some((r) => /safety_checker|feature_extractor|\.bin$|\.ckpt$|\/diffusion_pytorch_model\.safetensors$|\/model\.safetensors$/.test(r.path))).toBe(false);
    // The pinned commit was asked for, and the listing read at it.
    expect(hub.requests.some((r) => r.path === `/api/models/${DEFAULT_MODEL_REPO}/revision/${DEFAULT_MODEL_REVISION}`)).toBe(true);
    expect(hub.requests.filter((r) => r.path.includes("/tree/")).every((r) => r.path.includes(`/tree/${DEFAULT_MODEL_REVISION}`))).toBe(true);

    // The manifest records every file with the sha256 of the bytes the hub lists.
    const manifest = await readManifest(downloadDir);
    expect(manifest).toMatchObject({ repo: DEFAULT_MODEL_REPO, revision: DEFAULT_MODEL_REVISION, commit: DEFAULT_MODEL_REVISION });
    expect(manifest!.files.map((f) => f.path).sort()).toEqual(checkpoint.expected);
    for (const file of manifest!.files) {
      const served = hub.files.find((f) => f.path === file.path)!;
      expect(file).toEqual({ path: file.path, size: served.content.length, sha256: sha256(served.content) });
    }

    // The build: the engine's folder, from the downloads, fp16 weights → fp32 graphs; nothing left aside.
    const stamp = await stampOf(modelDir);
    expect(stamp).toMatchObject({ source: downloadDir, summary: { layout: "diffusers", inpainting: true, floatTypes: ["F16"] } });
    for (const part of ["text_encoder", "unet", "vae_encoder", "vae_decoder"]) expect(existsSync(path.join(modelDir, part, "model.onnx")), part).toBe(true);
    expect(await halfBuilt(modelsDir)).toEqual([]);
    expect(result.stdout).toContain(`${downloadDir}: 12 files, `);
    expect(result.stdout).toContain(`, commit ${DEFAULT_MODEL_REVISION}\n`);
    expect(result.stdout).toMatch(new RegExp(`${modelDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: built in [\\d.]+ s: inpainting \\(9-channel UNet\\), F16 weights → fp32 graphs\n`));
    // Progress of both: each file as it comes, then the build's phases.
    expect(result.stderr).toContain("unet/diffusion_pytorch_model.fp16.safetensors (");
    expect(result.stderr).toMatch(/downloads verified; building Maskflow's ONNX graphs[\s\S]*building (text_encoder|unet|vae_encoder|vae_decoder) \d+ %/);

    // `models list` shows the model, built from the pinned commit, and not the downloads folder.
    const listed = await models(["list", "--models", modelsDir, "--json"], { env: {} });
    const listings = JSON.parse(listed.stdout);
    expect(listings).toHaveLength(1);
    expect(listings[0]).toMatchObject({ name: "sd15-inpainting", kind: "built", status: "complete", repo: DEFAULT_MODEL_REPO, commit: DEFAULT_MODEL_REVISION, problems: [] });
    const text = await models(["list", "--models", modelsDir], { env: {} });
    expect(text.stdout).toMatch(/^sd15-inpainting\s+complete\s+.*built from stable-diffusion-v1-5\/stable-diffusion-inpainting@8a4288a76071f7280aedbdb3253bdb9e9d5d84bb, checkpoint kept in /m);
    expect(text.stdout).not.toContain(".downloads  ");

    // It opens and inpaints: diffusers' picture from the same (fp32) weights, within fp16's rounding.
    const [ddim] = (await loadDiffusersCases(CASES)).filter((c) => c.name === "ddim");
    const run = await runDiffusersCases([ddim], { casesDir: CASES, model: modelDir });
    expect(run.stderr).not.toMatch(/error|failed/i);
    expect(run.code).toBe(0);
    const [picture] = run.results.get("ddim") ?? [];
    expect(picture.distance.psnr).toBeGreaterThanOrEqual(40);
  }, 120_000);

  it("a second pull downloads nothing and rebuilds nothing; with the model folder gone, it rebuilds without downloading", async () => {
    const { hub, modelsDir, modelDir, env } = await setup();
    expect((await models(["pull", "--models", modelsDir], { env })).code).toBe(0);
    const built = await stampOf(modelDir);

    let before = hub.requests.length;
    const again = await models(["pull", "--models", modelsDir], { env });
    expect(again.stderr).not.toContain("maskflow models pull:");
    expect(again.code).toBe(0);
    expect(hub.requests.slice(before).every((r) => r.path.startsWith("/api/"))).toBe(true);
    expect(again.stdout).toContain("(0 B downloaded)");
    expect(again.stdout).toContain(`${modelDir}: already built from these files (key ${built.key})`);
    expect(await stampOf(modelDir)).toEqual(built);

    await rm(modelDir, { recursive: true });
    before = hub.requests.length;
    const rebuilt = await models(["pull", "--models", modelsDir], { env });
    expect(rebuilt.code).toBe(0);
    expect(hub.requests.slice(before).every((r) => r.path.startsWith("/api/"))).toBe(true);
    expect(rebuilt.stdout).toContain(`${modelDir}: built in `);
    expect((await stampOf(modelDir)).key).toBe(built.key);
  }, 60_000);

  it("takes a component's fp32 safetensors where the repository publishes no fp16 variant of it", async () => {
    const { hub, checkpoint, modelsDir, modelDir, downloadDir, env } = await setup({ fp16: ["unet", "text_encoder"] });
    expect(checkpoint.weights.vae).toBe("vae/diffusion_pytorch_model.safetensors");
    const result = await models(["pull", "--models", modelsDir], { env });
    expect(result.code).toBe(0);
    expect(await filesUnder(downloadDir)).toEqual([MANIFEST_NAME, ...checkpoint.expected].sort());
    expect(hub.contentRequests("vae/diffusion_pytorch_model.safetensors")).toHaveLength(1);
    expect(hub.contentRequests("unet/diffusion_pytorch_model.safetensors")).toHaveLength(0);
    expect((await stampOf(modelDir)).summary.floatTypes).toEqual(["F16", "F32"]);
  }, 60_000);

  it("refuses a file whose bytes differ from the sha256 the hub lists, and builds nothing", async () => {
    const unet = "unet/diffusion_pytorch_model.fp16.safetensors";
    const { hub, modelsDir, modelDir, downloadDir, env } = await setup({ behaviour: { corrupt: new Set([unet]) } });
    const result = await models(["pull", "--models", modelsDir], { env });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`${unet.replace(/\./g, "\\.")}: checksum mismatch \\(expected sha256 [0-9a-f]{64}, got [0-9a-f]{64}\\)`));
    expect(result.stderr).toContain("the file was removed after a second fetch");
    expect(hub.contentRequests(unet)).toHaveLength(2);
    expect(existsSync(path.join(downloadDir, unet))).toBe(false);
    expect(existsSync(path.join(downloadDir, `${unet}.part`))).toBe(false);
    expect(existsSync(path.join(downloadDir, MANIFEST_NAME))).toBe(false);
    expect(existsSync(modelDir)).toBe(false);
    expect(await halfBuilt(modelsDir)).toEqual([]);
    expect(result.stderr).not.toContain("building");
  }, 60_000);

  it("Ctrl+C during the build leaves no half-built folder; the downloads stay, and the next pull builds without fetching", async () => {
    const { hub, modelsDir, modelDir, downloadDir, env } = await setup();
    const child = spawn(process.execPath, [path.join(repoRoot, "bin/maskflow.js"), "models", "pull", "--models", modelsDir], {
      cwd: modelsDir,
      env: { ...process.env, ...env, MASKFLOW_MODELS_DIR: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    let interrupted = false;
    const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const code = await new Promise<number | null>((resolve) => {
      child.stderr.on("data", (chunk) => {
        stderr += chunk;
        // The build has started on its worker: the first progress it reports.
        if (!interrupted && /reading checkpoint|building (text_encoder|unet|vae)/.test(stderr)) {
          interrupted = true;
          child.kill("SIGINT");
        }
      });
      child.on("close", (exitCode) => resolve(exitCode));
    });
    clearTimeout(killer);
    expect(interrupted, stderr).toBe(true);
    expect(code, stderr).toBe(130);
    expect(stderr).toContain("maskflow models pull: interrupted while building: nothing half-built was kept, the downloads are; re-run to build");
    expect(existsSync(modelDir)).toBe(false);
    expect(await halfBuilt(modelsDir)).toEqual([]);
    expect(await readManifest(downloadDir)).toMatchObject({ commit: DEFAULT_MODEL_REVISION });

    const before = hub.requests.length;
    const again = await models(["pull", "--models", modelsDir], { env });
    expect(again.code).toBe(0);
    expect(hub.requests.slice(before).every((r) => r.path.startsWith("/api/"))).toBe(true);
    expect(again.stdout).toContain(`${modelDir}: built in `);
  }, 90_000);

  it("will not build over a model folder that no build made, and says so before fetching anything", async () => {
    const { hub, modelsDir, modelDir, env } = await setup();
    await mkdir(modelDir, { recursive: true });
    await writeFile(path.join(modelDir, "model_index.json"), "{}\n");
    const result = await models(["pull", "--models", modelsDir], { env });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`maskflow models pull: ${modelDir} already holds a model that no checkpoint build made (an ONNX export)`);
    expect(hub.requests.every((r) => r.path.startsWith("/api/"))).toBe(true);
    expect(await readdir(modelDir)).toEqual(["model_index.json"]);
  });

  it("a repository named that holds a diffusers checkpoint is pulled into .downloads/NAME and built into NAME", async () => {
    const { hub, checkpoint, modelsDir, modelDir, downloadDir, env } = await setup({ repo: "some-org/my-inpaint" });
    const result = await models(["pull", hub.repo, "--models", modelsDir], { env });
    expect(result.stderr).not.toContain("maskflow models pull:");
    expect(result.code).toBe(0);
    expect(await filesUnder(downloadDir)).toEqual([MANIFEST_NAME, ...checkpoint.expected].sort());
    expect(await readManifest(downloadDir)).toMatchObject({ repo: "some-org/my-inpaint", revision: "main", commit: hub.commit });
    expect(await stampOf(modelDir)).toMatchObject({ source: downloadDir, summary: { inpainting: true } });
  }, 60_000);

  it("--help says what the default pull fetches, at which commit, and that it is built", async () => {
    const help = await models(["--help"], {});
    expect(help.code).toBe(0);
    expect(help.stderr).toContain(`${DEFAULT_MODEL_REPO} at commit ${DEFAULT_MODEL_REVISION}`);
    expect(help.stderr).toContain("no safety checker, no .bin or .ckpt");
    expect(help.stderr).toContain("BUILDS Maskflow's ONNX graphs");
  });
});
