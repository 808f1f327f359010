import { cp, mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { formatBytes } from "../server/models/inspect-models.ts";
import { MANIFEST_NAME } from "../server/models/model-manifest.ts";
import { ensureTinyModels, type TinyModelFolders } from "./fixtures/make-tiny-models.ts";
import { BIG_FILE, type FakeHub, startFakeHub } from "./helpers/fake-hub.ts";
import { runModelsCommand as models } from "./helpers/run-models-command.ts";

let tiny: TinyModelFolders;
const folders: string[] = [];
const hubs: FakeHub[] = [];
beforeAll(async () => {
  tiny = await ensureTinyModels();
});
afterEach(async () => {
  await Promise.all(hubs.splice(0).map((hub) => hub.close()));
  await Promise.all(folders.splice(0).map((folder) => rm(folder, { recursive: true, force: true })));
});

async function modelsFolder(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-verify-"));
  folders.push(dir);
  return dir;
}

/** A copy of a tiny model to break, under a fresh models folder. */
async function copyOf(source: string, name = "copy"): Promise<{ modelsDir: string; modelDir: string }> {
  const modelsDir = await modelsFolder();
  const modelDir = path.join(modelsDir, name);
  await cp(source, modelDir, { recursive: true });
  return { modelsDir, modelDir };
}

const EXPORTED = "exported folder (no pull manifest)";
const LIST_FOOTER = "(list checks the files and their sizes only; `maskflow models verify` re-hashes pulled files and opens the sessions)\n";

describe("maskflow models verify and list on exported folders (no pull manifest)", () => {
  it("calls each tiny model, an optimum-layout export, whole: layout ok, sessions open", async () => {
    for (const dir of [tiny.fp32, tiny.fp16, tiny.legacy]) {
      const result = await models(["verify", dir], { env: {} });
      expect(result.stderr).toBe("");
      expect(result.stdout).toBe(`${dir}: ok: ${EXPORTED}: layout ok, sessions open\n`);
      expect(result.code).toBe(0);
    }
  });

  it("lists exported folders as complete, judged by layout only, and says so", async () => {
    const modelsDir = await modelsFolder();
    await cp(tiny.fp32, path.join(modelsDir, "sd15-inpainting"), { recursive: true });
    await cp(tiny.legacy, path.join(modelsDir, "legacy"), { recursive: true });
    const result = await models(["list", "--models", modelsDir], { env: {} });
    expect(result.code).toBe(0);
    const lines = result.stdout.split("\n");
    expect(lines[0]).toMatch(new RegExp(`^legacy {11}complete +\\d\\.\\d\\d MB  ${escape(EXPORTED)}: layout ok$`));
    expect(lines[1]).toMatch(new RegExp(`^sd15-inpainting  complete +\\d\\.\\d\\d MB  ${escape(EXPORTED)}: layout ok$`));
    expect(result.stdout.endsWith(LIST_FOOTER)).toBe(true);
    const json = JSON.parse((await models(["list", "--models", modelsDir, "--json"], { env: {} })).stdout) as Array<{ name: string; status: string; kind: string; problems: unknown[] }>;
    expect(json.map(({ name, status, kind, problems }) => ({ name, status, kind, problems }))).toEqual([
      { name: "legacy", status: "complete", kind: "exported", problems: [] },
      { name: "sd15-inpainting", status: "complete", kind: "exported", problems: [] },
    ]);
    // Verifying the whole folder verifies both.
    const verified = await models(["verify", "--models", modelsDir], { env: {} });
    expect(verified.code).toBe(0);
    expect(verified.stdout.match(/: ok: exported folder/g)).toHaveLength(2);
  });

  it("names every layout problem with its file and what was expected, and exits 1", async () => {
    const { modelsDir, modelDir } = await copyOf(tiny.fp32);
    const externalBytes = (await stat(path.join(modelDir, BIG_FILE))).size;
    await writeFile(path.join(modelDir, "model_index.json"), "[]");
    await rm(path.join(modelDir, "tokenizer/merges.txt"));
    await truncate(path.join(modelDir, BIG_FILE), 1000);
    await rm(path.join(modelDir, "vae_encoder/model.onnx"));
    await writeFile(path.join(modelDir, "vae_decoder/model.onnx"), "this is not a model\n");

    const result = await models(["verify", modelDir], { env: {} });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines[0]).toBe(`${modelDir}: 5 problem(s) (${EXPORTED}; sessions not opened until the files are fixed)`);
    expect(lines.slice(1)).toEqual([
      "  - model_index.json: expected the pipeline description (a JSON object), got an array",
      "  - tokenizer/merges.txt: missing; expected CLIP's BPE merges (a text file) beside vocab.json",
      expect.stringMatching(new RegExp(`^  - unet/model\\.onnx_data: truncated: 1000 bytes, but unet/model\\.onnx reads \\d+ tensor\\(s\\) \\(${externalBytes} bytes\\) from it$`)),
      "  - vae_encoder/model.onnx: missing; expected the vae_encoder ONNX model",
      "  - vae_decoder/model.onnx: not an ONNX model (unsupported wire type 4 at byte 1); expected the vae_decoder ONNX model",
    ]);

    const listed = await models(["list", "--models", modelsDir], { env: {} });
    expect(listed.stdout).toMatch(/^copy {2}incomplete +[\d.]+ [KM]?B {2}exported folder \(no pull manifest\): 5 problem\(s\)\n/);
    expect(listed.stdout).toContain(lines.slice(1).join("\n") + "\n");
  });

  it("passes a folder without tokenizer/: the engine uses the CLIP vocabulary Maskflow ships", async () => {
    const { modelDir } = await copyOf(tiny.fp32);
    await rm(path.join(modelDir, "tokenizer"), { recursive: true });
    const result = await models(["verify", modelDir], { env: {} });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/: ok: exported folder \(no pull manifest\): layout ok, sessions open/);
  });

  it("finds external data the graph references under another name (diffusers' weights.pb)", async () => {
    const { modelDir } = await copyOf(tiny.legacy);
    const externalBytes = (await stat(path.join(modelDir, "unet/weights.pb"))).size;
    await rm(path.join(modelDir, "unet/weights.pb"));
    const result = await models(["verify", modelDir], { env: {} });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`\\n  - unet/weights\\.pb: missing; unet/model\\.onnx reads \\d+ tensor\\(s\\) \\(${externalBytes} bytes\\) from it\\n$`));
  });

  it("opens the sessions: a graph without the inputs the engine feeds fails verify, though list (layout only) passes it", async () => {
    const { modelsDir, modelDir } = await copyOf(tiny.fp32);
    await cp(path.join(modelDir, "text_encoder/model.onnx"), path.join(modelDir, "vae_decoder/model.onnx"));
    const result = await models(["verify", "copy", "--models", modelsDir], { env: {} });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`${modelDir}: 1 problem(s) (${EXPORTED})\n  - vae_decoder/model.onnx: expected an input named "latent_sample"; it has "input_ids"\n`);
    expect((await models(["list", "--models", modelsDir], { env: {} })).stdout).toMatch(/^copy {2}complete .*: layout ok\n/);
  });

  it("calls a folder with partial downloads and no manifest an unfinished pull", async () => {
    const modelsDir = await modelsFolder();
    await mkdir(path.join(modelsDir, "half", "unet"), { recursive: true });
    await writeFile(path.join(modelsDir, "half", "unet", "model.onnx.part"), "partial");
    const result = await models(["verify", "half", "--models", modelsDir], { env: {} });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("(unfinished pull (no pull manifest yet); sessions not opened until the files are fixed)");
    expect(result.stderr).toContain("  - model_index.json: missing; expected the pipeline description (a JSON object)\n");
    expect(result.stderr).toContain("  - unet/model.onnx.part: partial download left by an interrupted `maskflow models pull`; re-run it to finish\n");
    expect((await models(["list", "--models", modelsDir], { env: {} })).stdout).toMatch(/^half {2}incomplete {8}7 B {2}unfinished pull \(no pull manifest yet\): 7 problem\(s\)\n/);
  });

  it("reports a manifest it cannot read, and still judges the folder", async () => {
    const { modelDir } = await copyOf(tiny.fp32);
    await writeFile(path.join(modelDir, MANIFEST_NAME), "{}");
    const result = await models(["verify", modelDir], { env: {} });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`^${escape(modelDir)}: 1 problem\\(s\\) \\(folder with an unreadable pull manifest\\)\\n  - \\.maskflow-model\\.json: not a Maskflow pull manifest \\(`));
  });
});

describe("maskflow models verify and list on pulled folders", () => {
  async function pulled() {
    const hub = await startFakeHub();
    hubs.push(hub);
    const modelsDir = await modelsFolder();
    const pull = await models(["pull", hub.repo, "--models", modelsDir], { env: { HF_ENDPOINT: hub.url } });
    expect(pull.code).toBe(0);
    return { hub, modelsDir, modelDir: path.join(modelsDir, "tiny-inpaint-onnx") };
  }

  it("says where it was pulled from, checks the checksums, the layout and the sessions", async () => {
    const { hub, modelsDir, modelDir } = await pulled();
    const source = `pulled from fake-org/tiny-inpaint-onnx@main (commit ${hub.commit.slice(0, 12)})`;
    const files = JSON.parse(await readFile(path.join(modelDir, MANIFEST_NAME), "utf8")).files.length as number;
    const ok = await models(["verify", "tiny-inpaint-onnx", "--models", modelsDir], { env: {} });
    expect(ok.stderr).toBe("");
    expect(ok.stdout).toBe(`${modelDir}: ok: ${source}: checksums ok (${files} files), layout ok, sessions open\n`);
    expect(ok.code).toBe(0);

    const listed = await models(["list", "--models", modelsDir], { env: {} });
    const bytes = formatBytes(JSON.parse((await models(["list", "--models", modelsDir, "--json"], { env: {} })).stdout)[0].bytes);
    expect(listed.stdout).toBe(`tiny-inpaint-onnx  complete    ${bytes.padStart(9)}  ${source}: layout ok, sizes match the manifest\n${LIST_FOOTER}`);
  });

  it("re-hashes: a changed byte the graph never reads is still reported, with the missing file", async () => {
    const { modelsDir, modelDir } = await pulled();
    const external = path.join(modelDir, BIG_FILE);
    const bytes = await readFile(external);
    bytes[bytes.length - 1] ^= 0x01; // in the padding past the tensors: only the checksum can see it
    await writeFile(external, bytes);
    await rm(path.join(modelDir, "tokenizer/merges.txt"));
    const bad = await models(["verify", modelDir], { env: {} });
    expect(bad.code).toBe(1);
    const lines = bad.stderr.trimEnd().split("\n");
    expect(lines[0]).toMatch(/: 2 problem\(s\) \(pulled from fake-org\/tiny-inpaint-onnx@main \(commit [0-9a-f]{12}\); sessions not opened until the files are fixed\)$/);
    expect(lines[1]).toBe("  - tokenizer/merges.txt: missing; expected CLIP's BPE merges (a text file) beside vocab.json");
    expect(lines[2]).toMatch(/^ {2}- unet\/model\.onnx_data: sha256 [0-9a-f]{64}, expected [0-9a-f]{64} \(the file changed since it was pulled\)$/);
    expect(lines).toHaveLength(3);

    // List does not hash; it sees the missing file only.
    const listed = await models(["list", "--models", modelsDir], { env: {} });
    expect(listed.stdout).toMatch(/^tiny-inpaint-onnx {2}incomplete .*: 1 problem\(s\)\n {2}- tokenizer\/merges\.txt: missing/);

    // With the layout whole again the sessions are opened (and open: the graph never reads that byte).
    await cp(path.join(tiny.fp32, "tokenizer/merges.txt"), path.join(modelDir, "tokenizer/merges.txt"));
    const checksumOnly = await models(["verify", modelDir], { env: {} });
    expect(checksumOnly.code).toBe(1);
    expect(checksumOnly.stderr).toMatch(/: 1 problem\(s\) \(pulled from [^;]*\)\n {2}- unet\/model\.onnx_data: sha256 /);
  });

  it("list compares sizes with the manifest", async () => {
    const { modelsDir, modelDir } = await pulled();
    await writeFile(path.join(modelDir, "unet/config.json"), "{\"in_channels\": 9, \"extra\": true}");
    const listed = await models(["list", "--models", modelsDir], { env: {} });
    expect(listed.stdout).toMatch(/incomplete .*: 1 problem\(s\)\n {2}- unet\/config\.json: \d+ bytes; the pull manifest records \d+\n/);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
