/**
 * The fake hub's stand-in for stable-diffusion-v1-5/stable-diffusion-inpainting: the tiny checkpoint's diffusers
 * folder (test/fixtures/make-tiny-checkpoint.ts) with the real repository's layout — each network's weights as
 * fp32 `.safetensors`, as an fp16 `.fp16.safetensors` variant (the same tensors rounded to float16, as diffusers'
 * `variant="fp16"` files are) where asked, and as pickles — plus what the real one also holds and a pull must never
 * fetch: the safety checker, the feature extractor, `.bin` weights, the single-file `.ckpt`, README and .gitattributes.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { encodeSafetensors, type FixtureTensor } from "../fixtures/checkpoint-writers.ts";
import { ensureTinyCheckpoints, tinyDiffusersTensors } from "../fixtures/make-tiny-checkpoint.ts";
import type { FakeRepoFile } from "./fake-hub.ts";

export type FakeCheckpointComponent = "unet" | "vae" | "text_encoder";
const COMPONENTS: readonly FakeCheckpointComponent[] = ["unet", "vae", "text_encoder"];
const FP32_NAME: Record<FakeCheckpointComponent, string> = {
  unet: "unet/diffusion_pytorch_model.safetensors",
  vae: "vae/diffusion_pytorch_model.safetensors",
  text_encoder: "text_encoder/model.safetensors",
};
const FP16_NAME: Record<FakeCheckpointComponent, string> = {
  unet: "unet/diffusion_pytorch_model.fp16.safetensors",
  vae: "vae/diffusion_pytorch_model.fp16.safetensors",
  text_encoder: "text_encoder/model.fp16.safetensors",
};

export interface FakeCheckpointRepo {
  readonly files: FakeRepoFile[];
  /** What a pull must fetch, written out here (not derived by the code under test's rules), sorted. */
  readonly expected: string[];
  /** The weight file expected for each component. */
  readonly weights: Record<FakeCheckpointComponent, string>;
}

let fp16Files: Promise<Record<FakeCheckpointComponent, Buffer>> | undefined;

/** The tiny model's tensors in float16, under the .fp16 names' contents (made once per process). */
function tinyFp16Files(): Promise<Record<FakeCheckpointComponent, Buffer>> {
  fp16Files ??= Promise.resolve().then(() => {
    const tensors = tinyDiffusersTensors();
    const half = (list: readonly FixtureTensor[]) =>
      Buffer.from(encodeSafetensors(list.map((tensor) => (tensor.dtype === "F32" ? { ...tensor, dtype: "F16" as const } : tensor)), { format: "pt" }));
    return { unet: half(tensors.unet), vae: half(tensors.vae), text_encoder: half(tensors.textEncoder) };
  });
  return fp16Files;
}

/**
 * The repository's files. `fp16`: the components that publish an fp16 variant (all three by default, as the real
 * repository does; fewer to check the per-component fallback to fp32).
 */
export async function makeFakeCheckpointRepo(options: { fp16?: readonly FakeCheckpointComponent[] } = {}): Promise<FakeCheckpointRepo> {
  const fp16 = options.fp16 ?? COMPONENTS;
  const { diffusers } = await ensureTinyCheckpoints();
  const files: FakeRepoFile[] = [];
  for (const entry of await readdir(diffusers, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || entry.name.startsWith(".")) continue;
    const filePath = path.relative(diffusers, path.join(entry.parentPath, entry.name)).split(path.sep).join("/");
    files.push({ path: filePath, content: await readFile(path.join(diffusers, filePath)), lfs: filePath.endsWith(".safetensors") });
  }
  const half = await tinyFp16Files();
  for (const component of fp16) files.push({ path: FP16_NAME[component], content: half[component], lfs: true });
  const decoy = (filePath: string, size: number, lfs = true): FakeRepoFile => ({ path: filePath, content: randomBytes(size), lfs });
  files.push(
    { path: ".gitattributes", content: Buffer.from("*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs\n*.ckpt filter=lfs\n"), lfs: false },
    { path: "README.md", content: Buffer.from("---\nlicense: creativeml-openrail-m\n---\n# tiny inpainting\n"), lfs: false },
    decoy("sd-v1-5-inpainting.ckpt", 40_000),
    { path: "safety_checker/config.json", content: Buffer.from('{"_name_or_path": "CompVis/stable-diffusion-safety-checker"}\n'), lfs: false },
    decoy("safety_checker/model.safetensors", 30_000),
    decoy("safety_checker/model.fp16.safetensors", 15_000),
    decoy("safety_checker/pytorch_model.bin", 30_000),
    { path: "feature_extractor/preprocessor_config.json", content: Buffer.from('{"crop_size": 224}\n'), lfs: false },
    decoy("unet/diffusion_pytorch_model.bin", 30_000),
    decoy("unet/diffusion_pytorch_model.fp16.bin", 15_000),
    decoy("vae/diffusion_pytorch_model.bin", 30_000),
    decoy("text_encoder/pytorch_model.bin", 30_000),
  );
  const weights = Object.fromEntries(COMPONENTS.map((component) => [component, fp16.includes(component) ? FP16_NAME[component] : FP32_NAME[component]])) as Record<
    FakeCheckpointComponent,
    string
  >;
  const expected = [
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    weights.text_encoder,
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "unet/config.json",
    weights.unet,
    "vae/config.json",
    weights.vae,
  ].sort();
  return { files: files.sort((a, b) => a.path.localeCompare(b.path)), expected, weights };
}
