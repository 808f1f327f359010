import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdtemp, mkdir, writeFile, copyFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ClipTokenizer, cleanText, unescapeHtml } from "../server/engines/onnx/clip-tokenizer.ts";
import { CLIP_VOCABULARY_DIR } from "../server/engines/onnx/clip-vocabulary.ts";

const vocabDir = CLIP_VOCABULARY_DIR;

const BOS = 49406;
const EOS = 49407;

/** The ids between BOS and EOS. */
function textIds(tokenizer: ClipTokenizer, text: string): number[] {
  const { ids, tokens } = tokenizer.encode(text);
  return ids.slice(1, tokens.length - 1);
}

describe("ClipTokenizer with the real CLIP vocabulary", () => {
  let tokenizer: ClipTokenizer;
  beforeAll(async () => {
    tokenizer = await ClipTokenizer.fromFolder(vocabDir);
  });

  it("encodes the README's known prompt, padded with EOS to 77", () => {
    const { ids, tokens, truncated } = tokenizer.encode("a photo of a cat");
    expect(ids.slice(0, 7)).toEqual([BOS, 320, 1125, 539, 320, 2368, EOS]);
    expect(ids).toHaveLength(77);
    expect(ids.slice(7).every((id) => id === EOS)).toBe(true);
    expect(tokens).toEqual(["<|startoftext|>", "a</w>", "photo</w>", "of</w>", "a</w>", "cat</w>", "<|endoftext|>"]);
    expect(truncated).toBe(false);
  });

  it("ids and tokens agree with vocab.json", () => {
    const { ids, tokens } = tokenizer.encode("photorealistic hyperdetailed");
    tokens.forEach((token, i) => expect(tokenizer.tokenOf(ids[i])).toBe(token));
  });

  it("collapses whitespace, strips and lower-cases", () => {
    expect(textIds(tokenizer, "  A \t Photo\n\n of a CAT ")).toEqual([320, 1125, 539, 320, 2368]);
  });

  // The following expectations were produced by running openai/CLIP's simple_tokenizer
  // algorithm (Python, with the `regex` pattern) over the same vocab.json/merges.txt.
  it("splits words missing from the vocabulary into their ranked merges", () => {
    expect(tokenizer.encode("photorealistic").tokens.slice(1, -1)).toEqual(["photo", "realistic</w>"]);
    expect(textIds(tokenizer, "photorealistic hyperdetailed")).toEqual([1153, 16157, 7997, 12609]);
    expect(textIds(tokenizer, "supercalifragilisticexpialidocious")).toEqual([
      1642, 2857, 13093, 2076, 5868, 26850, 835, 639, 38466,
    ]);
  });

  it("splits digits one by one, keeps punctuation runs and contractions", () => {
    expect(textIds(tokenizer, "it's 2024!!")).toEqual([585, 568, 273, 271, 273, 275, 748]);
    expect(textIds(tokenizer, "they'll we've I'm he'd")).toEqual([889, 1342, 649, 1200, 328, 880, 797, 1896]);
    expect(textIds(tokenizer, "a red sports-car, 8k, ultra-detailed; (masterpiece:1.2)")).toEqual([
      320, 736, 2054, 268, 1615, 267, 279, 330, 267, 8118, 268, 12609, 282, 263, 12066, 281, 272, 269, 273, 264,
    ]);
  });

  it("unescapes HTML entities (twice, as simple_tokenizer does)", () => {
    expect(textIds(tokenizer, "tom &amp; jerry &lt;3 &#39;hi&#39;")).toEqual([2435, 261, 9164, 283, 274, 262, 1883, 262]);
    expect(textIds(tokenizer, "tom &amp;amp; jerry")).toEqual(textIds(tokenizer, "tom & jerry"));
  });

  it("maps non-ASCII text through its UTF-8 bytes", () => {
    expect(textIds(tokenizer, "café naïve")).toEqual([15304, 1097, 35689, 563]);
    expect(textIds(tokenizer, "東京の猫 🐱 x²")).toEqual([48338, 21078, 105, 21575, 163, 234, 360, 22979, 343, 41175]);
  });

  it("recognises the special tokens written in the text", () => {
    expect(tokenizer.encode("<|endoftext|>hello").ids.slice(0, 4)).toEqual([BOS, EOS, 3306, EOS]);
  });

  it("encodes empty or blank text as BOS, EOS and padding", () => {
    const { ids, tokens } = tokenizer.encode("   ");
    expect(ids.slice(0, 2)).toEqual([BOS, EOS]);
    expect(ids).toHaveLength(77);
    expect(tokens).toEqual(["<|startoftext|>", "<|endoftext|>"]);
  });

  it("truncates a 100-word prompt to 77 ids with EOS last and reports it", () => {
    const prompt = Array.from({ length: 100 }, () => "cat").join(" ");
    const { ids, tokens, truncated, droppedTokens } = tokenizer.encode(prompt);
    expect(ids).toHaveLength(77);
    expect(ids[0]).toBe(BOS);
    expect(ids.slice(1, 76).every((id) => id === 2368)).toBe(true);
    expect(ids[76]).toBe(EOS);
    expect(tokens).toHaveLength(77);
    expect(truncated).toBe(true);
    expect(droppedTokens).toBe(25);
  });

  it("fits exactly 75 text tokens without truncating", () => {
    const { truncated, ids } = tokenizer.encode(Array.from({ length: 75 }, () => "cat").join(" "));
    expect(truncated).toBe(false);
    expect(ids[75]).toBe(2368);
    expect(ids[76]).toBe(EOS);
  });
});

describe("ClipTokenizer folder configuration and errors", () => {
  let scratch: string;
  beforeAll(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), "maskflow-clip-"));
  });
  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  async function folder(name: string, files: Record<string, string | "copy">): Promise<string> {
    const dir = path.join(scratch, name);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    for (const [file, content] of Object.entries(files)) {
      if (content === "copy") await copyFile(path.join(vocabDir, file), path.join(dir, file));
      else await writeFile(path.join(dir, file), content);
    }
    return dir;
  }

  it("reads the pad token from tokenizer_config.json (some exports pad with '!' = 0)", async () => {
    const dir = await folder("pad-bang", {
      "vocab.json": "copy",
      "merges.txt": "copy",
      "tokenizer_config.json": JSON.stringify({ pad_token: { content: "!", __type: "AddedToken" }, model_max_length: 77 }),
    });
    const tokenizer = await ClipTokenizer.fromFolder(dir);
    const { ids } = tokenizer.encode("a cat");
    expect(ids.slice(0, 4)).toEqual([BOS, 320, 2368, EOS]);
    expect(ids.slice(4).every((id) => id === 0)).toBe(true);
    expect((await ClipTokenizer.fromFolder(dir, { padToken: "<|endoftext|>" })).encode("a").ids[76]).toBe(EOS);
  });

  it("reads special_tokens_map.json and honours a smaller max length", async () => {
    const dir = await folder("special-map", {
      "vocab.json": "copy",
      "merges.txt": "copy",
      "special_tokens_map.json": JSON.stringify({ pad_token: "!" }),
    });
    const tokenizer = await ClipTokenizer.fromFolder(dir, { maxLength: 5 });
    expect(tokenizer.encode("a photo of a cat")).toMatchObject({ ids: [BOS, 320, 1125, 539, EOS], truncated: true, droppedTokens: 2 });
    expect(tokenizer.encode("a").ids).toEqual([BOS, 320, EOS, 0, 0]);
  });

  it("names the missing file", async () => {
    const noMerges = await folder("no-merges", { "vocab.json": "copy" });
    await expect(ClipTokenizer.fromFolder(noMerges)).rejects.toThrow(/merges\.txt/);
    const empty = await folder("empty", {});
    await expect(ClipTokenizer.fromFolder(empty)).rejects.toThrow(/vocab\.json/);
  });

  it("names a corrupt vocab.json or merges.txt", async () => {
    const badVocab = await folder("bad-vocab", { "vocab.json": "{not json", "merges.txt": "copy" });
    await expect(ClipTokenizer.fromFolder(badVocab)).rejects.toThrow(/vocab\.json/);
    const arrayVocab = await folder("array-vocab", { "vocab.json": "[1, 2]", "merges.txt": "copy" });
    await expect(ClipTokenizer.fromFolder(arrayVocab)).rejects.toThrow(/vocab\.json/);
    const badMerges = await folder("bad-merges", { "vocab.json": "copy", "merges.txt": "#version: 0.2\ni n\nnot a merge line\n" });
    await expect(ClipTokenizer.fromFolder(badMerges)).rejects.toThrow(/merges\.txt line 3/);
    const emptyMerges = await folder("empty-merges", { "vocab.json": "copy", "merges.txt": "#version: 0.2\n" });
    await expect(ClipTokenizer.fromFolder(emptyMerges)).rejects.toThrow(/merges\.txt/);
  });
});

describe("text cleaning", () => {
  it("unescapes numeric, named and legacy entities like Python's html.unescape", () => {
    expect(unescapeHtml("&#x41;&#66;&amp;&lt;&gt;&quot;&nbsp;&eacute;&unknown; &ampx &#150;")).toBe(
      'AB&<>"\u00a0é&unknown; &x \u2013',
    );
    expect(cleanText("  two\u00a0 words \n")).toBe("two words");
  });
});
