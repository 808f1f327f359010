import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdtemp, mkdir, writeFile, copyFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { readFileSync } from "node:fs";
import { MAX_BPE_SYMBOLS, mergeByRank } from "../server/engines/onnx/bpe-merge.ts";
import { ClipTokenizer, cleanText, unescapeHtml, WORD_CHUNK_BYTES } from "../server/engines/onnx/clip-tokenizer.ts";
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

/** simple_tokenizer.py's bpe loop as written there: one rescan of the whole word per merge applied. */
function referenceBpe(symbols: readonly string[], ranks: ReadonlyMap<string, number>): string[] {
  let word = symbols.slice();
  while (word.length > 1) {
    let best: string | undefined;
    let bestRank = Infinity;
    for (let i = 0; i < word.length - 1; i++) {
      const rank = ranks.get(`${word[i]} ${word[i + 1]}`);
      if (rank !== undefined && rank < bestRank) [best, bestRank] = [`${word[i]} ${word[i + 1]}`, rank];
    }
    if (best === undefined) break;
    const [first, second] = best.split(" ");
    const merged: string[] = [];
    for (let i = 0; i < word.length; ) {
      if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
        merged.push(first + second);
        i += 2;
      } else {
        merged.push(word[i]);
        i += 1;
      }
    }
    word = merged;
  }
  return word;
}

/** A deterministic generator, so that a failure can be replayed. */
function randomLetters(seed: number) {
  let state = seed >>> 0;
  return (length: number, alphabet = "abcdefghijklmnopqrstuvwxyz"): string => {
    let text = "";
    for (let i = 0; i < length; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      text += alphabet[state % alphabet.length];
    }
    return text;
  };
}

describe("BPE on long words and long texts", () => {
  let tokenizer: ClipTokenizer;
  let ranks: Map<string, number>;
  beforeAll(async () => {
    tokenizer = await ClipTokenizer.fromFolder(vocabDir);
    const lines = readFileSync(path.join(vocabDir, "merges.txt"), "utf8").split("\n").slice(1).filter(Boolean);
    ranks = new Map(lines.map((line, rank) => [line, rank]));
  });

  it("merges exactly as simple_tokenizer's round-by-round loop, on words of every kind", () => {
    const random = randomLetters(12);
    const words = [
      ...Array.from({ length: 300 }, (_, i) => random(1 + (i % 80))),
      ...Array.from({ length: 40 }, (_, i) => random(200 + i * 10, "ab")),
      ...["x".repeat(1000), "aaaaaaa", "abababababa", "mississippi", "photorealistic", "hyperdetailed"],
      ...Array.from({ length: 40 }, (_, i) => random(100 + i, "xyz.!0")),
    ];
    const rankOf = (left: string, right: string) => ranks.get(`${left} ${right}`);
    for (const word of words) {
      const symbols = Array.from(word);
      symbols[symbols.length - 1] += "</w>";
      expect(mergeByRank(symbols, rankOf), word).toEqual(referenceBpe(symbols, ranks));
      // Also without the word end, as a chunk in the middle of a long word is merged.
      expect(mergeByRank(Array.from(word), rankOf), word).toEqual(referenceBpe(Array.from(word), ranks));
    }
  });

  it("a 384 KB prompt of six 64,000-letter words: the first word's first 75 tokens, merging at most the first two words", () => {
    const random = randomLetters(7);
    const words = Array.from({ length: 6 }, () => random(64_000));
    const encoding = tokenizer.encode(words.join(" "));
    expect(encoding.tokens.slice(1, -1)).toEqual(tokenizer.tokenize(words[0]).slice(0, 75));
    expect(encoding.ids).toHaveLength(77);
    expect(encoding.ids[76]).toBe(EOS);
    expect(encoding.truncated).toBe(true);
    // The first word is merged whole (its tokens depend on all of it) and the second to count what was cut;
    // the last four only counted as words.
    expect(encoding.bytesMerged).toBe(128_000);
    expect(encoding.droppedTokensExact).toBe(false);
    const firstTwo = tokenizer.tokenize(words[0]).length + tokenizer.tokenize(words[1]).length;
    expect(encoding.droppedTokens).toBe(firstTwo - 75 + 4);
  });

  it('"x" × 1,000,000 stops after the first chunk, with the tokens the whole word gives', async () => {
    const text = "x".repeat(1_000_000);
    const encoding = tokenizer.encode(text);
    expect(encoding.bytesMerged).toBeLessThanOrEqual(2 * WORD_CHUNK_BYTES);
    expect(encoding.truncated).toBe(true);
    expect(encoding.droppedTokensExact).toBe(false);
    expect(encoding.droppedTokens).toBeGreaterThan(0);
    const whole = await ClipTokenizer.fromFolder(vocabDir, { wordChunkBytes: MAX_BPE_SYMBOLS });
    const wholeTokens = whole.tokenize(text);
    expect(wholeTokens).toHaveLength(250_000);
    expect(encoding.tokens.slice(1, -1)).toEqual(wholeTokens.slice(0, 75));
    expect(encoding.tokens[1]).toBe("xxxx");
    // tokenize() keeps everything: no call stack overflow on a quarter million tokens.
    expect(tokenizer.tokenize(text)).toHaveLength(250_000);
  });

  it("chunking a 200,000-letter word leaves its first 75 tokens as merging it whole gives them", async () => {
    const whole = await ClipTokenizer.fromFolder(vocabDir, { wordChunkBytes: MAX_BPE_SYMBOLS });
    const random = randomLetters(99);
    for (const word of [random(200_000), random(200_000, "ab"), random(200_000, "eio")]) {
      expect(tokenizer.encode(word).tokens).toEqual(whole.encode(word).tokens);
    }
  });

  it("counts cut tokens exactly for a long ordinary prompt", () => {
    const prompt = Array.from({ length: 1500 }, (_, i) => (i % 3 ? "photorealistic" : "cat")).join(" ");
    const encoding = tokenizer.encode(prompt);
    expect(encoding.droppedTokensExact).toBe(true);
    expect(encoding.droppedTokens).toBe(tokenizer.tokenize(prompt).length - 75);
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
