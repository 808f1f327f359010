import { describe, it, expect, afterEach } from "vitest";
import { existsSync } from "node:fs";
import { Writable } from "node:stream";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { tokenizeCommand } from "../server/cli/tokenize-command.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const vocabDir = path.resolve(repoRoot, "../shared/data/clip-tokenizer");

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

  it("defaults to $MASKFLOW_MODEL_DIR/tokenizer", async () => {
    process.env.MASKFLOW_MODEL_DIR = path.resolve(vocabDir, "../no-such-model");
    const { code, stderr } = await run(["a cat"]);
    expect(code).toBe(2);
    expect(stderr).toContain(path.join(process.env.MASKFLOW_MODEL_DIR, "tokenizer"));
    expect(stderr).toMatch(/--tokenizer/);
  });

  it("falls back to models/sd15-inpainting when MASKFLOW_MODEL_DIR is unset", async () => {
    delete process.env.MASKFLOW_MODEL_DIR;
    const defaultDir = path.join("models", "sd15-inpainting", "tokenizer");
    const { code, stderr } = await run(["a cat"]);
    if (existsSync(defaultDir)) {
      expect(code).toBe(0); // a model has been installed in this checkout
    } else {
      expect(code).toBe(2);
      expect(stderr).toContain(defaultDir);
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
