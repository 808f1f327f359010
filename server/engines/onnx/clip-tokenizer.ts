// CLIP's byte-level BPE tokenizer (openai/CLIP simple_tokenizer.py, as used by SD 1.5 through
// Hugging Face's CLIPTokenizer): clean, lower-case, split by CLIP's pattern, map bytes to
// printable unicode, merge pairs by rank with "</w>" marking a word's end, then wrap in
// BOS/EOS and pad or truncate to the text encoder's 77 positions.
// Written from the algorithm's description; no tokenizer package is needed.

import { readFile } from "node:fs/promises";
import path from "node:path";
import { MAX_BPE_SYMBOLS, mergeByRank } from "./bpe-merge.ts";

export interface ClipTokenizerOptions {
  /** Positions the text encoder takes, BOS and EOS included (SD 1.5: 77). */
  maxLength?: number;
  /** Token used for padding; overrides the folder's tokenizer config. */
  padToken?: string;
  /** Words longer than this many bytes are merged in chunks of it (default WORD_CHUNK_BYTES). */
  wordChunkBytes?: number;
}

export interface ClipEncoding {
  /** Exactly maxLength ids: BOS, the text's tokens, EOS, then padding. */
  ids: number[];
  /** The tokens behind the ids up to and including EOS (padding left out). */
  tokens: string[];
  /** True when the text had more tokens than fit and some were cut before EOS. */
  truncated: boolean;
  /**
   * How many of the text's tokens were cut (0 when not truncated): exact when droppedTokensExact,
   * else a lower bound (the cut text was too long to tokenize just to count it).
   */
  droppedTokens: number;
  /** False when droppedTokens is only "at least". */
  droppedTokensExact: boolean;
  /** Bytes of the cleaned text that went through BPE; the rest was only cut into words and counted. */
  bytesMerged: number;
}

const START_OF_TEXT = "<|startoftext|>";
const END_OF_TEXT = "<|endoftext|>";
const DEFAULT_MAX_LENGTH = 77;
const WORD_END = "</w>";
// Split pattern of simple_tokenizer.py (regex module, IGNORECASE); the text is already
// lower-cased, the flag only keeps the contractions matching as there.
const CLIP_SPLIT =
  /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;
// openai's cache is unbounded; a long-running server only needs the recent vocabulary, and
// only of ordinary words (a cached 60 KB word would pin memory for nothing).
const BPE_CACHE_LIMIT = 20_000;
const CACHED_WORD_BYTES = 64;
/**
 * Text past the 77 positions is tokenized only to count what was cut, and only up to this many
 * bytes; beyond them droppedTokens is a lower bound. 64 KiB covers any prompt the server accepts
 * (MAX_PROMPT_CHARACTERS: 10,000 characters are at most 40,000 bytes), so its counts are exact.
 */
const DROPPED_COUNT_BYTES = 64 * 1024;
/**
 * Words longer than this are merged in chunks of this many bytes, so that encode's work stops with
 * the first chunks of an absurd word instead of merging all of it (a 1,000,000-letter word).
 * Below it the result is exactly Hugging Face's. Above it, merges across a chunk boundary are not
 * made, so tokens next to a boundary can differ from HF's. The kept tokens are not among them:
 * 75 tokens span at most 2,400 bytes (no CLIP token is longer than 32 bytes), 62 KiB before the
 * first boundary, and a missed merge changes only its neighbourhood (test/clip-tokenizer.test.ts
 * compares the first 75 tokens of long random words merged whole and in chunks). No prompt the
 * server takes has such a word (10,000 characters make at most 40,000 bytes).
 */
export const WORD_CHUNK_BYTES = 64 * 1024;

export class ClipTokenizer {
  readonly #encoder: Map<string, number>;
  readonly #decoder: Map<number, string>;
  /** Rank of each merge, by its left then its right symbol (no pair string is built per lookup). */
  readonly #mergeRanks = new Map<string, Map<string, number>>();
  readonly #byteToUnicode = bytesToUnicode();
  readonly #utf8 = new TextEncoder();
  readonly #cache = new Map<string, string[]>();
  readonly #wordChunkBytes: number;
  readonly maxLength: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;

  constructor(
    vocab: Map<string, number>,
    merges: ReadonlyArray<readonly [string, string]>,
    options: ClipTokenizerOptions = {},
  ) {
    this.#encoder = vocab;
    this.#decoder = new Map(Array.from(vocab, ([token, id]) => [id, token]));
    merges.forEach(([a, b], rank) => {
      let rights = this.#mergeRanks.get(a);
      if (!rights) this.#mergeRanks.set(a, (rights = new Map()));
      // A pair listed twice keeps its last rank, as simple_tokenizer's dict(zip(merges, range(...))) does.
      rights.set(b, rank);
    });
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
    const wordChunkBytes = options.wordChunkBytes ?? WORD_CHUNK_BYTES;
    if (!Number.isInteger(wordChunkBytes) || wordChunkBytes < 1 || wordChunkBytes > MAX_BPE_SYMBOLS) {
      throw new Error(`wordChunkBytes must be an integer from 1 to ${MAX_BPE_SYMBOLS}; got ${wordChunkBytes}`);
    }
    this.#wordChunkBytes = wordChunkBytes;
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
      wordChunkBytes: options.wordChunkBytes,
    });
  }

  /**
   * BOS, the text's first maxLength − 2 tokens, EOS and padding. The work is bounded whatever the
   * text's length: words are merged only until the positions are full (and 64 KiB more to count
   * what was cut), and a word is merged in chunks of at most WORD_CHUNK_BYTES.
   */
  encode(text: string): ClipEncoding {
    const room = this.maxLength - 2;
    const kept: string[] = [];
    let droppedTokens = 0;
    let droppedTokensExact = true;
    let countingBudget = DROPPED_COUNT_BYTES;
    let bytesMerged = 0;
    // Only what fits is tokenized in full; the rest is counted while that stays cheap, then each
    // remaining word is counted as the one token it at least makes.
    for (const word of words(text)) {
      if (!droppedTokensExact) {
        droppedTokens++;
        continue;
      }
      for (const piece of this.#piecesOf(word)) {
        if (kept.length < room) {
          bytesMerged += piece.length;
          for (const token of this.#pieceTokens(piece)) {
            if (kept.length < room) kept.push(token);
            else droppedTokens++;
          }
        } else if (piece.length <= countingBudget) {
          countingBudget -= piece.length;
          bytesMerged += piece.length;
          droppedTokens += this.#pieceTokens(piece).length;
        } else {
          droppedTokensExact = false;
          droppedTokens++;
          break;
        }
      }
    }
    const tokens = [START_OF_TEXT, ...kept, END_OF_TEXT];
    const ids = tokens.map((token, index) =>
      index === 0 ? this.bosId : index === tokens.length - 1 ? this.eosId : this.#idOf(token),
    );
    while (ids.length < this.maxLength) ids.push(this.padId);
    return { ids, tokens, truncated: droppedTokens > 0, droppedTokens, droppedTokensExact, bytesMerged };
  }

  /** The BPE tokens of a text, without BOS/EOS or length limits (linear in the text's length). */
  tokenize(text: string): string[] {
    const tokens: string[] = [];
    for (const word of words(text)) {
      for (const piece of this.#piecesOf(word)) {
        // A loop, not push(...): a spread of a huge array overflows the stack.
        for (const token of this.#pieceTokens(piece)) tokens.push(token);
      }
    }
    return tokens;
  }

  /** The token string of an id (e.g. 1125 → "photo</w>"). */
  tokenOf(id: number): string | undefined {
    return this.#decoder.get(id);
  }

  /**
   * A word's bytes mapped to CLIP's printable symbols, in chunks of at most wordChunkBytes (see
   * WORD_CHUNK_BYTES), mapped one chunk at a time so that encode can stop early in a huge word.
   */
  *#piecesOf(word: string): Generator<Piece> {
    if (word === START_OF_TEXT || word === END_OF_TEXT) {
      yield { symbols: word, special: true, wordEnd: true, length: 1 };
      return;
    }
    const bytes = this.#utf8.encode(word);
    for (let start = 0; start < bytes.length; start += this.#wordChunkBytes) {
      const end = Math.min(bytes.length, start + this.#wordChunkBytes);
      let symbols = "";
      for (let i = start; i < end; i++) symbols += this.#byteToUnicode[bytes[i]];
      yield { symbols, special: false, wordEnd: end === bytes.length, length: end - start };
    }
  }

  #pieceTokens(piece: Piece): readonly string[] {
    if (piece.special) return [piece.symbols];
    const cacheable = piece.wordEnd && piece.length <= CACHED_WORD_BYTES;
    const cached = cacheable ? this.#cache.get(piece.symbols) : undefined;
    if (cached) return cached;
    // Every mapped byte is one UTF-16 unit (bytesToUnicode stays below U+0200), so split() is per byte.
    const symbols = piece.symbols.split("");
    if (piece.wordEnd) symbols[symbols.length - 1] += WORD_END;
    const merged = mergeByRank(symbols, this.#rankOf);
    if (cacheable) {
      if (this.#cache.size >= BPE_CACHE_LIMIT) this.#cache.clear();
      this.#cache.set(piece.symbols, merged);
    }
    return merged;
  }

  readonly #rankOf = (left: string, right: string): number | undefined => this.#mergeRanks.get(left)?.get(right);

  #idOf(token: string): number {
    // Every byte symbol is in CLIP's vocabulary, so this only misses with a foreign vocab;
    // HF's CLIPTokenizer uses <|endoftext|> as its unknown token.
    return this.#encoder.get(token) ?? this.eosId;
  }
}

/** The text cut into words as simple_tokenizer cuts it (special tokens are words of their own), lazily. */
function* words(text: string): Generator<string> {
  for (const match of cleanText(text).toLowerCase().matchAll(CLIP_SPLIT)) yield match[0];
}

/** One word, or one chunk of a very long word, as CLIP's printable byte symbols. */
interface Piece {
  readonly symbols: string;
  /** <|startoftext|> or <|endoftext|> written in the text: one token as it stands. */
  readonly special: boolean;
  /** The last chunk of its word: its last symbol carries "</w>". */
  readonly wordEnd: boolean;
  /** Bytes of the word in this piece. */
  readonly length: number;
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
