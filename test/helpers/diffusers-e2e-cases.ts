/**
 * The end-to-end cases of test/fixtures/diffusers-parity/inpaint-cases (made by test/parity/e2e_fixture.py with
 * diffusers' StableDiffusionInpaintPipeline), run through `maskflow run` as one workflow — LoadImage, LoadMask,
 * Prompt, Scheduler, Inpaint, SaveImage per case — and each PNG compared with diffusers' own.
 */
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { z } from "zod";
import { main } from "../../server/cli/main.ts";
import { compareInpaintImages, type ImageDistance } from "./image-distance.ts";
import { PARITY_FIXTURES } from "./parity-goldens.ts";

export const TINY_INPAINT_MODEL = path.join(PARITY_FIXTURES, "tiny-inpaint");
const CASES = path.join(PARITY_FIXTURES, "inpaint-cases");

/** One case of a diffusers parity fixture: its settings, its inputs and diffusers' pictures (files beside cases.json). */
export const diffusersCaseSchema = z.object({
  name: z.string().regex(/^[a-z0-9-]+$/),
  scheduler: z.string(),
  steps: z.number().int(),
  guidance: z.number(),
  strength: z.number(),
  seed: z.number().int(),
  samples: z.number().int(),
  width: z.number().int(),
  height: z.number().int(),
  prompt: z.string(),
  negative: z.string(),
  picture: z.string(),
  mask: z.string(),
  diffusers_images: z.array(z.string()),
});

const casesFile = z.object({
  diffusers: z.string(),
  cases: z.array(diffusersCaseSchema),
});
export type DiffusersCase = z.infer<typeof diffusersCaseSchema>;

/** A fixture's cases (cases.json in `casesDir`: the tiny ONNX export's by default). */
export async function loadDiffusersCases(casesDir: string = CASES): Promise<DiffusersCase[]> {
  return casesFile.parse(JSON.parse(await readFile(path.join(casesDir, "cases.json"), "utf8"))).cases;
}

export interface DiffusersCasesRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Per case, one entry per sample, in sample order; undefined when `maskflow run` wrote no picture for it. */
  readonly results: Map<string, Array<{ file: string; distance: ImageDistance }>>;
}

function collect() {
  let text = "";
  return {
    stream: Object.assign(new Writable({ write(chunk: Buffer, _e: string, cb: () => void) { text += chunk; cb(); } }), { isTTY: false }),
    get text() {
      return text;
    },
  };
}

/**
 * Runs every case in one `maskflow run` (the model loads once) in a temporary folder it removes after;
 * `extraArgs` are appended to the command line (e.g. `--lora FILE:SM:SC`).
 */
export async function runDiffusersCases(
  cases: readonly DiffusersCase[],
  options: { casesDir?: string; model?: string; extraArgs?: readonly string[] } = {},
): Promise<DiffusersCasesRun> {
  const casesDir = options.casesDir ?? CASES;
  const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-diffusers-e2e-"));
  try {
    const nodes: object[] = [];
    for (const [index, c] of cases.entries()) {
      for (const file of [c.picture, c.mask]) await copyFile(path.join(casesDir, file), path.join(dir, file));
      const id = (k: number) => String(index * 10 + k);
      nodes.push(
        { id: id(1), type: "LoadImage", inputs: { image: c.picture } },
        // The mask PNG is grey: its red channel is the grey value itself.
        { id: id(2), type: "LoadMask", inputs: { image: c.mask, channel: "red" } },
        { id: id(3), type: "Prompt", inputs: { positive: c.prompt, negative: c.negative } },
        { id: id(4), type: "Scheduler", inputs: { scheduler: c.scheduler, steps: c.steps, guidance: c.guidance, strength: c.strength, seed: c.seed } },
        {
          id: id(5),
          type: "Inpaint",
          inputs: {
            image: [id(1), "image"], mask: [id(2), "mask"], prompt: [id(3), "prompt"], scheduler: [id(4), "scheduler"],
            samples: c.samples, width: c.width, height: c.height, paste_back: false,
          },
        },
        { id: id(6), type: "SaveImage", inputs: { images: [id(5), "images"], filename_prefix: c.name } },
      );
    }
    const file = path.join(dir, "workflow.json");
    await writeFile(file, JSON.stringify({ format: "maskflow-workflow", version: 1, nodes }));
    const stdout = collect();
    const stderr = collect();
    const args = ["run", file, "--out", path.join(dir, "out"), "--data", path.join(dir, "data"), "--model", options.model ?? TINY_INPAINT_MODEL, ...(options.extraArgs ?? [])];
    const code = await main(args, { stdout: stdout.stream, stderr: stderr.stream });
    const written = stdout.text.trim().split("\n").filter(Boolean);
    const results = new Map<string, Array<{ file: string; distance: ImageDistance }>>();
    for (const c of cases) {
      // SaveImage numbers its files in the order written, so a case's samples sort in sample order.
      const files = written.filter((line) => path.basename(line).startsWith(`${c.name}_`)).sort();
      const entries = [];
      for (const [n, own] of files.entries()) {
        const theirs = c.diffusers_images[n];
        if (theirs === undefined) break;
        entries.push({ file: path.basename(own), distance: await compareInpaintImages(own, path.join(casesDir, theirs)) });
      }
      results.set(c.name, entries);
    }
    return { code, stdout: stdout.text, stderr: stderr.text, results };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
