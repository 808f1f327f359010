// CLIP's byte-level BPE tokenizer (openai/CLIP simple_tokenizer.py, as used by SD 1.5 through
// Hugging Face's CLIPTokenizer): clean, lower-case, split by CLIP's pattern, map bytes to
// printable unicode, merge pairs by rank with "</w>" marking a word's end, then wrap in
// BOS/EOS and pad or truncate to the text encoder's 77 positions.
// Written from the algorithm's description; no tokenizer package is needed.

import { readFile } from "node:fs/promises";
import path from "node:path";

export interface ClipTokenizerOptions {
  /** Positions the text encoder takes, BOS and EOS included (SD 1.5: 77). */
  maxLength?: number;
  /** Token used for padding; overrides the folder's tokenizer config. */
  padToken?: string;
}

export interface ClipEncoding {
  /** Exactly maxLength ids: BOS, the text's tokens, EOS, then padding. */
  ids: number[];
  /** The tokens behind the ids up to and including EOS (padding left out). */
  tokens: string[];
  /** True when the text had more tokens than fit and some were cut before EOS. */
  truncated: boolean;
  /** How many of the text's tokens were cut (0 when not truncated). */
  droppedTokens: number;
}

const START_OF_TEXT = "<|startoftext|>";
const END_OF_TEXT = "<|endoftext|>";
const DEFAULT_MAX_LENGTH = 77;
const WORD_END = "</w>";
// Split pattern of simple_tokenizer.py (regex module, IGNORECASE); the text is already
// lower-cased, the flag only keeps the contractions matching as there.
const CLIP_SPLIT =
  /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;
// openai's cache is unbounded; a long-running server only needs the recent vocabulary.
const BPE_CACHE_LIMIT = 20_000;

export class ClipTokenizer {
  readonly #encoder: Map<string, number>;
  readonly #decoder: Map<number, string>;
  readonly #mergeRanks: Map<string, number>;
  readonly #byteToUnicode = bytesToUnicode();
  readonly #utf8 = new TextEncoder();
  readonly #cache = new Map<string, string[]>();
  readonly maxLength: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;

  constructor(
    vocab: Map<string, number>,
    merges: ReadonlyArray<readonly [string, string]>,
    options: { maxLength?: number; padToken?: string } = {},
  ) {
    this.#encoder = vocab;
    this.#decoder = new Map(Array.from(vocab, ([token, id]) => [id, token]));
    this.#mergeRanks = new Map(merges.map(([a, b], rank) => [`${a} ${b}`, rank]));
    const bos = vocab.get(START_OF_TEXT);
    const eos = vocab.get(END_OF_TEXT);
    if (bos === undefined || eos === undefined) {
      throw new Error(`vocab.json has no ${START_OF_TEXT} or ${END_OF_TEXT} entry`);
    }
    this.bosId = bos;
    this.eosId = eos;
    const padToken = options.padToken ?? END_OF_TEXT;
    const pad = vocab.get(padToken);
    if (pad === undefined) throw new Error(`pad token ${JSON.stringify(padToken)} is not in vocab.json`);
    this.padId = pad;
    const maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH;
    if (!Number.isInteger(maxLength) || maxLength < 2) {
      throw new Error(`maxLength must be an integer of at least 2 (BOS and EOS); got ${maxLength}`);
    }
    this.maxLength = maxLength;
    for (const [a, b] of merges) {
      // Every merge result must be a vocabulary entry, else the files do not belong together.
      if (!vocab.has(a + b)) throw new Error(`merges.txt merge "${a} ${b}" has no vocab.json entry`);
    }
  }

  /**
   * Loads vocab.json and merges.txt from a tokenizer folder; the pad token and max length come
   * from tokenizer_config.json / special_tokens_map.json when present (options win).
   */
  static async fromFolder(dir: string, options: ClipTokenizerOptions = {}): Promise<ClipTokenizer> {
    const vocab = await readVocab(path.join(dir, "vocab.json"));
    const merges = await readMerges(path.join(dir, "merges.txt"));
    const config = await readTokenizerConfig(dir);
    return new ClipTokenizer(vocab, merges, {
      maxLength: options.maxLength ?? config.maxLength,
      padToken: options.padToken ?? config.padToken,
    });
  }

  encode(text: string): ClipEncoding {
    const textTokens = this.tokenize(text);
    const room = this.maxLength - 2;
    const droppedTokens = Math.max(0, textTokens.length - room);
    const kept = textTokens.slice(0, room);
    const tokens = [START_OF_TEXT, ...kept, END_OF_TEXT];
    const ids = tokens.map((token, index) =>
      index === 0 ? this.bosId : index === tokens.length - 1 ? this.eosId : this.#idOf(token),
    );
    while (ids.length < this.maxLength) ids.push(this.padId);
    return { ids, tokens, truncated: droppedTokens > 0, droppedTokens };
  }

  /** The BPE tokens of a text, without BOS/EOS or length limits. */
  tokenize(text: string): string[] {
    const cleaned = cleanText(text).toLowerCase();
    const tokens: string[] = [];
    for (const match of cleaned.matchAll(CLIP_SPLIT)) {
      const piece = match[0];
      if (piece === START_OF_TEXT || piece === END_OF_TEXT) {
        tokens.push(piece);
        continue;
      }
      let mapped = "";
      for (const byte of this.#utf8.encode(piece)) mapped += this.#byteToUnicode[byte];
      tokens.push(...this.#bpe(mapped));
    }
    return tokens;
  }

  /** The token string of an id (e.g. 1125 → "photo</w>"). */
  tokenOf(id: number): string | undefined {
    return this.#decoder.get(id);
  }

  #idOf(token: string): number {
    // Every byte symbol is in CLIP's vocabulary, so this only misses with a foreign vocab;
    // HF's CLIPTokenizer uses <|endoftext|> as its unknown token.
    return this.#encoder.get(token) ?? this.eosId;
  }

  #bpe(piece: string): string[] {
    const cached = this.#cache.get(piece);
    if (cached) return cached;
    const symbols = Array.from(piece);
    symbols[symbols.length - 1] += WORD_END;
    let word = symbols;
    // Each round merges at least one pair, so a word of n symbols needs at most n - 1 rounds.
    for (let round = 0; round < symbols.length && word.length > 1; round++) {
      let best: string | null = null;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const rank = this.#mergeRanks.get(`${word[i]} ${word[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = `${word[i]} ${word[i + 1]}`;
        }
      }
      if (best === null) break;
      const space = best.indexOf(" ");
      const first = best.slice(0, space);
      const second = best.slice(space + 1);
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
    if (this.#cache.size >= BPE_CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(piece, word);
    return word;
  }
}

/** simple_tokenizer's basic_clean + whitespace_clean (ftfy's repairs are left out). */
export function cleanText(text: string): string {
  return unescapeHtml(unescapeHtml(text)).replace(/\s+/gu, " ").trim();
}

/** GPT-2/CLIP's reversible map from the 256 byte values to printable unicode characters. */
function bytesToUnicode(): string[] {
  const printable = (byte: number) =>
    (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || (byte >= 0xae && byte <= 0xff);
  const table: string[] = new Array(256);
  let shifted = 0;
  for (let byte = 0; byte < 256; byte++) {
    table[byte] = String.fromCodePoint(printable(byte) ? byte : 256 + shifted++);
  }
  return table;
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "not found" : String(error);
    throw new Error(`cannot read tokenizer file ${file}: ${reason}`);
  }
}

async function readVocab(file: string): Promise<Map<string, number>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readText(file));
  } catch (error) {
    if (error instanceof SyntaxError) throw new Error(`${file} is not valid JSON: ${error.message}`);
    throw error;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new Error(`${file} must be a JSON object mapping tokens to ids`);
  }
  const vocab = new Map<string, number>();
  for (const [token, id] of Object.entries(parsed)) {
    if (!Number.isInteger(id) || (id as number) < 0) {
      throw new Error(`${file}: the id of ${JSON.stringify(token)} is not a non-negative integer`);
    }
    vocab.set(token, id as number);
  }
  if (vocab.size === 0) throw new Error(`${file} is empty`);
  return vocab;
}

async function readMerges(file: string): Promise<Array<[string, string]>> {
  const lines = (await readText(file)).split(/\r?\n/);
  const merges: Array<[string, string]> = [];
  lines.forEach((line, index) => {
    if (line === "" || (index === 0 && line.startsWith("#version"))) return;
    const parts = line.split(" ");
    if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
      throw new Error(`${file} line ${index + 1} is not a merge "A B": ${JSON.stringify(line.slice(0, 80))}`);
    }
    merges.push([parts[0], parts[1]]);
  });
  if (merges.length === 0) throw new Error(`${file} has no merges`);
  return merges;
}

interface TokenizerFolderConfig {
  padToken?: string;
  maxLength?: number;
}

// tokenizer_config.json / special_tokens_map.json store tokens either as strings or as
// AddedToken objects ({"content": "!", ...}). Either file may be absent.
async function readTokenizerConfig(dir: string): Promise<TokenizerFolderConfig> {
  const config: TokenizerFolderConfig = {};
  for (const name of ["special_tokens_map.json", "tokenizer_config.json"]) {
    const file = path.join(dir, name);
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(file, "utf8"));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw new Error(`${file} is not valid JSON: ${(error as Error).message}`);
    }
    if (parsed === null || typeof parsed !== "object") continue;
    const record = parsed as Record<string, unknown>;
    const pad = tokenContent(record.pad_token);
    if (pad !== undefined) config.padToken = pad;
    const maxLength = record.model_max_length;
    // Some exports write a huge sentinel (1e30) meaning "no limit": keep the CLIP default then.
    if (typeof maxLength === "number" && Number.isInteger(maxLength) && maxLength >= 2 && maxLength <= 4096) {
      config.maxLength = maxLength;
    }
  }
  return config;
}

function tokenContent(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return undefined;
}

// Python's html.unescape, which simple_tokenizer applies twice: numeric references, and the
// named entities that occur in prompts (the full HTML5 table has 2,231; the rest stay as
// written). Legacy names (amp, lt, gt, quot, nbsp, ...) also match without ";", as in Python.
const NAMED_ENTITIES: Record<string, string> = {
  amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0", copy: "\u00a9",
  reg: "\u00ae", trade: "\u2122", hellip: "\u2026", mdash: "\u2014", ndash: "\u2013",
  lsquo: "\u2018", rsquo: "\u2019", ldquo: "\u201c", rdquo: "\u201d", laquo: "\u00ab",
  raquo: "\u00bb", deg: "\u00b0", times: "\u00d7", divide: "\u00f7", middot: "\u00b7",
  bull: "\u2022", eacute: "\u00e9", egrave: "\u00e8", agrave: "\u00e0", ccedil: "\u00e7",
  uuml: "\u00fc", ouml: "\u00f6", auml: "\u00e4", szlig: "\u00df", ntilde: "\u00f1",
  euro: "\u20ac", pound: "\u00a3", yen: "\u00a5", cent: "\u00a2", sect: "\u00a7",
  para: "\u00b6", plusmn: "\u00b1", frac12: "\u00bd", frac14: "\u00bc", frac34: "\u00be",
  hearts: "\u2665", star: "\u2606", rarr: "\u2192", larr: "\u2190",
};
const LEGACY_NO_SEMICOLON = new Set(["amp", "lt", "gt", "quot", "nbsp", "copy", "reg", "deg",
  "times", "divide", "middot", "eacute", "egrave", "agrave", "ccedil", "uuml", "ouml", "auml",
  "szlig", "ntilde", "pound", "yen", "cent", "sect", "para", "plusmn", "frac12", "frac14",
  "frac34", "laquo", "raquo"]);
// html.unescape maps C1 control references to their Windows-1252 characters.
const WINDOWS_1252_C1: Record<number, number> = {
  0x80: 0x20ac, 0x82: 0x201a, 0x83: 0x0192, 0x84: 0x201e, 0x85: 0x2026, 0x86: 0x2020,
  0x87: 0x2021, 0x88: 0x02c6, 0x89: 0x2030, 0x8a: 0x0160, 0x8b: 0x2039, 0x8c: 0x0152,
  0x8e: 0x017d, 0x91: 0x2018, 0x92: 0x2019, 0x93: 0x201c, 0x94: 0x201d, 0x95: 0x2022,
  0x96: 0x2013, 0x97: 0x2014, 0x98: 0x02dc, 0x99: 0x2122, 0x9a: 0x0161, 0x9b: 0x203a,
  0x9c: 0x0153, 0x9e: 0x017e, 0x9f: 0x0178,
};
const CHARACTER_REFERENCE = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g;

export function unescapeHtml(text: string): string {
  if (!text.includes("&")) return text;
  return text.replace(CHARACTER_REFERENCE, (whole, body: string) => {
    if (body[0] === "#") {
      const hex = body[1] === "x" || body[1] === "X";
      const code = Number.parseInt(body.slice(hex ? 2 : 1).replace(";", ""), hex ? 16 : 10);
      if (code in WINDOWS_1252_C1) return String.fromCodePoint(WINDOWS_1252_C1[code]);
      if (code === 0 || (code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff) return "\ufffd";
      return String.fromCodePoint(code);
    }
    if (body.endsWith(";")) {
      const named = NAMED_ENTITIES[body.slice(0, -1)];
      if (named !== undefined) return named;
    }
    // Without ";" Python takes the longest legacy name that prefixes the run ("&ampx" -> "&x").
    for (let end = Math.min(body.length, 6); end >= 2; end--) {
      const name = body.slice(0, end);
      if (LEGACY_NO_SEMICOLON.has(name)) return NAMED_ENTITIES[name] + body.slice(end);
    }
    return whole;
  });
}
