import { describe, it, expect, afterEach } from "vitest";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { Writable } from "node:stream";
import path from "node:path";
import { tokenizeCommand } from "../server/cli/tokenize-command.ts";
import { CLIP_VOCABULARY_DIR } from "../server/engines/onnx/clip-vocabulary.ts";

const vocabDir = CLIP_VOCABULARY_DIR;

class Collector extends Writable {
  text = "";
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

async function run(args: string[]) {
  const stdout = new Collector();
  const stderr = new Collector();
  const code = await tokenizeCommand(args, { stdout, stderr });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

const savedModelDir = process.env.MASKFLOW_MODEL_DIR;
afterEach(() => {
  if (savedModelDir === undefined) delete process.env.MASKFLOW_MODEL_DIR;
  else process.env.MASKFLOW_MODEL_DIR = savedModelDir;
});

describe("maskflow tokenize", () => {
  it("prints one JSON line with 77 ids, the tokens and truncated false", async () => {
    const { code, stdout, stderr } = await run(["--tokenizer", vocabDir, "a photo of a cat"]);
    expect(code).toBe(0);
    expect(stderr).toBe("");
    expect(stdout.endsWith("\n")).toBe(true);
    expect(stdout.trim().split("\n")).toHaveLength(1);
    const result = JSON.parse(stdout) as { ids: number[]; tokens: string[]; truncated: boolean };
    expect(result.ids).toHaveLength(77);
    expect(result.ids.slice(0, 7)).toEqual([49406, 320, 1125, 539, 320, 2368, 49407]);
    expect(result.tokens).toEqual(["<|startoftext|>", "a</w>", "photo</w>", "of</w>", "a</w>", "cat</w>", "<|endoftext|>"]);
    expect(result.truncated).toBe(false);
  });

  it("says on stderr how many tokens a long prompt lost", async () => {
    const prompt = Array.from({ length: 80 }, () => "cat").join(" ");
    const { code, stdout, stderr } = await run([`--tokenizer=${vocabDir}`, prompt]);
    expect(code).toBe(0);
    const result = JSON.parse(stdout) as { ids: number[]; truncated: boolean };
    expect(result.truncated).toBe(true);
    expect(result.ids[76]).toBe(49407);
    expect(stderr).toMatch(/truncated: 5 tokens cut/);
  });

  it("works on a fresh install: without a model it uses the CLIP vocabulary shipped with Maskflow", async () => {
    const empty = await mkdtemp(path.join(tmpdir(), "maskflow-no-model-"));
    try {
      process.env.MASKFLOW_MODEL_DIR = path.join(empty, "sd15-inpainting");
      const { code, stdout, stderr } = await run(["a photo of a cat"]);
      expect(stderr).toBe("");
      expect(code).toBe(0);
      expect((JSON.parse(stdout) as { ids: number[] }).ids.slice(0, 7)).toEqual([49406, 320, 1125, 539, 320, 2368, 49407]);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it("uses the model's own tokenizer/ when $MASKFLOW_MODEL_DIR has one", async () => {
    // A vocabulary that differs from CLIP's shows which folder was read: "cat</w>" gets another id.
    const model = await mkdtemp(path.join(tmpdir(), "maskflow-own-tokenizer-"));
    try {
      const vocab = JSON.parse(await readFile(path.join(vocabDir, "vocab.json"), "utf8")) as Record<string, number>;
      const catId = vocab["cat</w>"]!;
      const dogId = vocab["dog</w>"]!;
      vocab["cat</w>"] = dogId;
      vocab["dog</w>"] = catId;
      await mkdir(path.join(model, "tokenizer"));
      await writeFile(path.join(model, "tokenizer", "vocab.json"), JSON.stringify(vocab));
      await copyFile(path.join(vocabDir, "merges.txt"), path.join(model, "tokenizer", "merges.txt"));
      process.env.MASKFLOW_MODEL_DIR = model;
      const { code, stdout } = await run(["cat"]);
      expect(code).toBe(0);
      expect((JSON.parse(stdout) as { ids: number[] }).ids[1]).toBe(dogId);
    } finally {
      await rm(model, { recursive: true, force: true });
    }
  });

  it("rejects a missing folder, missing text, extra arguments and unknown options with exit 2", async () => {
    const missing = await run(["--tokenizer", path.join(vocabDir, "nope"), "a cat"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--tokenizer/);
    expect((await run(["--tokenizer", vocabDir])).code).toBe(2);
    expect((await run(["--tokenizer", vocabDir, "a", "cat"])).stderr).toMatch(/quote the prompt/);
    const unknown = await run(["--frobnicate", "a cat"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/usage: maskflow tokenize/);
  });

  it("prints usage for --help", async () => {
    const { code, stdout } = await run(["--help"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/usage: maskflow tokenize/);
  });
});
