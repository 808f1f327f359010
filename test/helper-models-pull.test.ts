import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { LearnedFillEngine } from "../server/engines/fill/learned-fill-engine.ts";
import { SegmentEngine } from "../server/engines/segment/segment-engine.ts";
import { HELPER_MODELS, type HelperModel, LAMA, MOBILE_SAM } from "../server/models/helper-model-catalog.ts";
import { MANIFEST_NAME } from "../server/models/model-manifest.ts";
import { ensureTinyHelperModels, TINY_LAMA_FILE, TINY_SAM_FILES, type TinyHelperModelFolders } from "./fixtures/make-tiny-helper-models.ts";
import { type FakeHub, type FakeRepoFile, startFakeHub } from "./helpers/fake-hub.ts";
import { runModelsCommand as models } from "./helpers/run-models-command.ts";

let tiny: TinyHelperModelFolders;
const hubs: FakeHub[] = [];
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  tiny = await ensureTinyHelperModels();
});
afterEach(async () => {
  await Promise.all(hubs.splice(0).map((hub) => hub.close()));
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

const sha256 = (content: Buffer) => createHash("sha256").update(content).digest("hex");

/** The miniature's files under the real export's names, plus what the real repository also holds and a pull must skip. */
async function samRepoFiles(): Promise<FakeRepoFile[]> {
  return [
    { path: TINY_SAM_FILES.acly.encoder, content: await readFile(path.join(tiny.samAcly, TINY_SAM_FILES.acly.encoder)), lfs: true },
    { path: TINY_SAM_FILES.acly.decoder, content: await readFile(path.join(tiny.samAcly, TINY_SAM_FILES.acly.decoder)), lfs: true },
    { path: "sam_mask_decoder_multi.onnx", content: randomBytes(20_000), lfs: true },
    { path: "mobile_sam_encoder_onnx/export_image_encoder.py", content: Buffer.from("# export\n"), lfs: false },
    { path: "README.md", content: Buffer.from("# MobileSAM\n"), lfs: false },
  ];
}

/** The catalog entry, with the miniature's sizes and digests in place of the real files'. */
function catalogFor(real: HelperModel, files: readonly FakeRepoFile[]): HelperModel {
  return {
    ...real,
    revision: "main",
    files: real.files.map((known) => {
      const served = files.find((file) => file.path === known.path)!;
      return { path: known.path, size: served.content.length, sha256: sha256(served.content) };
    }),
  };
}

async function setup(repo: string, files: FakeRepoFile[]) {
  const hub = await startFakeHub({ files, repo });
  hubs.push(hub);
  const modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-helper-pull-"));
  cleanups.push(() => rm(modelsDir, { recursive: true, force: true }));
  return { hub, modelsDir, env: { HF_ENDPOINT: hub.url } };
}

describe("the helper model catalog", () => {
  it("records each real file's size and sha256, pinned where the repository has changed a file before", () => {
    expect(HELPER_MODELS.map((model) => model.name)).toEqual(["mobile-sam", "lama"]);
    for (const model of HELPER_MODELS) {
      for (const file of model.files) {
        expect(file.sha256).toMatch(/^[0-9a-f]{64}$/);
        expect(file.size).toBeGreaterThan(1_000_000);
      }
    }
    expect(LAMA.revision).toMatch(/^[0-9a-f]{40}$/);
    expect(MOBILE_SAM.files.map((file) => file.path)).toEqual([TINY_SAM_FILES.acly.encoder, TINY_SAM_FILES.acly.decoder]);
    expect(LAMA.files.map((file) => file.path)).toEqual([TINY_LAMA_FILE]);
  });
});

describe("maskflow models pull mobile-sam", () => {
  it("fetches only the catalog's files into models/mobile-sam, where the engine finds and runs them; list and verify judge it as a Segment Anything model", async () => {
    const files = await samRepoFiles();
    const { hub, modelsDir, env } = await setup("Acly/MobileSAM", files);
    const catalog = [catalogFor(MOBILE_SAM, files), LAMA];
    const pulled = await models(["pull", "mobile-sam", "--models", modelsDir], { env, helperModels: catalog });
    expect(pulled.stderr).not.toContain("maskflow models pull:");
    expect(pulled.code).toBe(0);
    const dir = path.join(modelsDir, "mobile-sam");
    expect((await readdir(dir)).sort()).toEqual([MANIFEST_NAME, TINY_SAM_FILES.acly.encoder, TINY_SAM_FILES.acly.decoder].sort());
    expect(hub.contentRequests("sam_mask_decoder_multi.onnx")).toEqual([]);

    const engine = new SegmentEngine({ modelsDir, threads: 1 });
    cleanups.push(() => engine.release());
    const picture = { width: 64, height: 48, data: new Uint8Array(64 * 48 * 3).fill(128) };
    const result = await engine.segment({ picture, prompt: { points: [{ x: 32, y: 24, positive: true }] } });
    expect(result.mask.width).toBe(64);

    const list = await models(["list", "--models", modelsDir], {});
    expect(list.stdout).toMatch(/mobile-sam\s+complete\s+.*pulled from Acly\/MobileSAM@main.*layout ok, sizes match the manifest/);
    const verify = await models(["verify", "mobile-sam", "--models", modelsDir], {});
    expect(verify.code).toBe(0);
    expect(verify.stdout).toContain("checksums ok (2 files), layout ok, sessions open");
  });

  it("refuses, before downloading, a file whose listed size or sha256 is not the catalog's, naming both", async () => {
    const files = await samRepoFiles();
    const { hub, modelsDir, env } = await setup("Acly/MobileSAM", files);
    const catalog = catalogFor(MOBILE_SAM, files);
    const expected = { ...catalog, files: [catalog.files[0], { ...catalog.files[1], sha256: "0".repeat(64) }] };
    const result = await models(["pull", "mobile-sam", "--models", modelsDir], { env, helperModels: [expected] });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${TINY_SAM_FILES.acly.decoder} is listed with ${catalog.files[1].size} bytes, sha256 ${catalog.files[1].sha256}`);
    expect(result.stderr).toContain(`Maskflow knows it as ${catalog.files[1].size} bytes, sha256 ${"0".repeat(64)}`);
    expect(hub.contentRequests(TINY_SAM_FILES.acly.encoder)).toEqual([]);
  });

  it("verify names every wrong input of a decoder that is not segment-anything's", async () => {
    const files = await samRepoFiles();
    const { modelsDir, env } = await setup("Acly/MobileSAM", files);
    await models(["pull", "mobile-sam", "--models", modelsDir], { env, helperModels: [catalogFor(MOBILE_SAM, files)] });
    // The LaMa miniature where the decoder should be: a model, but not a prompt decoder.
    await writeFile(path.join(modelsDir, "mobile-sam", TINY_SAM_FILES.acly.decoder), await readFile(path.join(tiny.lama, TINY_LAMA_FILE)));
    const verify = await models(["verify", "mobile-sam", "--models", modelsDir], {});
    expect(verify.code).toBe(1);
    expect(verify.stderr).toMatch(/sam_mask_decoder_single\.onnx: \d+ bytes; the pull manifest records \d+/);
    expect(verify.stderr).toContain(`${TINY_SAM_FILES.acly.decoder}: input "point_coords" [1, num_points, 2] is missing; the file's inputs are "image", "mask"`);
    expect(verify.stderr).toContain(`${TINY_SAM_FILES.acly.decoder}: output "low_res_masks" [1, masks, 256, 256] is missing`);
  });
});

describe("maskflow models pull lama", () => {
  it("fetches lama_fp32.onnx into models/lama, which the learned fill then loads", async () => {
    const files: FakeRepoFile[] = [
      { path: TINY_LAMA_FILE, content: await readFile(path.join(tiny.lama, TINY_LAMA_FILE)), lfs: true },
      { path: "lama.onnx", content: randomBytes(30_000), lfs: true },
      { path: "image.jpg", content: randomBytes(2_000), lfs: false },
    ];
    const { modelsDir, env } = await setup("Carve/LaMa-ONNX", files);
    const result = await models(["pull", "lama", "--models", modelsDir], { env, helperModels: [MOBILE_SAM, catalogFor(LAMA, files)] });
    expect(result.code, result.stderr).toBe(0);
    expect((await readdir(path.join(modelsDir, "lama"))).sort()).toEqual([MANIFEST_NAME, TINY_LAMA_FILE]);
    const engine = new LearnedFillEngine({ modelsDir, threads: 1 });
    cleanups.push(() => engine.release());
    expect((await engine.model()).size).toBe(512);
  });
});
