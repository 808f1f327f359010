/**
 * `maskflow models pull lcm-lora`: the LoRA's file from the hub (a fake one on 127.0.0.1 serving a miniature LoRA
 * under the real repository's name), checked against the catalog's size and sha256, lands in models/loras/ under the
 * name the shipped LCM workflow uses; other bytes are refused and nothing is installed.
 */
import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type HelperModel, LCM_LORA } from "../server/models/helper-model-catalog.ts";
import { ensureTinyLoras } from "./fixtures/make-tiny-lora.ts";
import { type FakeHub, startFakeHub } from "./helpers/fake-hub.ts";
import { runModelsCommand as models } from "./helpers/run-models-command.ts";

const hubs: FakeHub[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(hubs.splice(0).map((hub) => hub.close()));
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function setup(served: Buffer, catalogBytes: Buffer) {
  const hub = await startFakeHub({ repo: LCM_LORA.repo, files: [{ path: "pytorch_lora_weights.safetensors", content: served, lfs: true }, { path: "README.md", content: Buffer.from("# LCM-LoRA\n"), lfs: false }] });
  hubs.push(hub);
  const modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-lora-pull-"));
  dirs.push(modelsDir);
  const catalog: HelperModel = {
    ...LCM_LORA,
    files: [{ path: "pytorch_lora_weights.safetensors", size: catalogBytes.length, sha256: createHash("sha256").update(catalogBytes).digest("hex") }],
  };
  return { modelsDir, run: () => models(["pull", "lcm-lora", "--models", modelsDir], { env: { HF_ENDPOINT: hub.url }, loraDownloads: [catalog] }) };
}

describe("maskflow models pull lcm-lora", () => {
  it("the catalog pins the real file's size and sha256", () => {
    expect(LCM_LORA.files).toEqual([{ path: "pytorch_lora_weights.safetensors", size: 134_621_556, sha256: "8f90d840e075ff588a58e22c6586e2ae9a6f7922996ee6649a7f01072333afe4" }]);
    expect(LCM_LORA.loraFile).toBe("lcm-lora-sdv1-5.safetensors");
  });

  it("fetches only the LoRA, verified, into models/loras/lcm-lora-sdv1-5.safetensors", async () => {
    const bytes = await readFile((await ensureTinyLoras()).peft);
    const { modelsDir, run } = await setup(bytes, bytes);
    const result = await run();
    expect(result.code, result.stderr).toBe(0);
    expect(await readdir(path.join(modelsDir, "loras"))).toEqual(["lcm-lora-sdv1-5.safetensors"]);
    expect((await readFile(path.join(modelsDir, "loras", "lcm-lora-sdv1-5.safetensors"))).equals(bytes)).toBe(true);
    expect(result.stdout).toMatch(/lcm-lora-sdv1-5\.safetensors: LCM-LoRA/);
    const again = await run();
    expect(again.code, again.stderr).toBe(0);
  });

  it("refuses a file that differs from the one checked, and installs nothing", async () => {
    const bytes = await readFile((await ensureTinyLoras()).peft);
    const other = Buffer.from(bytes);
    other[other.length - 1] ^= 0xff;
    const { modelsDir, run } = await setup(other, bytes);
    const result = await run();
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/sha256/);
    expect(await readdir(path.join(modelsDir, "loras")).catch(() => [])).toEqual([]);
  });
});
