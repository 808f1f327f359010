// `maskflow tokenize [--tokenizer DIR] "TEXT"`: shows how a prompt reaches the text encoder,
// as one line of JSON, and warns on stderr when the prompt is cut to the 77 positions.

import { stat } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { ClipTokenizer } from "../engines/onnx/clip-tokenizer.ts";
import { tokenizerFolderOf } from "../engines/onnx/clip-vocabulary.ts";

export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

const USAGE = 'usage: maskflow tokenize [--tokenizer DIR] "TEXT"';
const DEFAULT_MODEL_DIR = "models/sd15-inpainting";

/** Exit codes: 0 done, 2 bad usage or the named tokenizer folder missing, 1 tokenizer files unusable. */
export async function tokenizeCommand(args: string[], io: CommandIo): Promise<number> {
  let parsed: ReturnType<typeof parseTokenizeArgs>;
  try {
    parsed = parseTokenizeArgs(args);
  } catch (error) {
    io.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (parsed.help) {
    io.stdout.write(
      `${USAGE}\n  --tokenizer DIR  folder with vocab.json and merges.txt (default: the model's tokenizer/ in ` +
        "$MASKFLOW_MODEL_DIR or models/sd15-inpainting, else CLIP's vocabulary shipped with Maskflow, as the engine does)\n",
    );
    return 0;
  }
  if (parsed.text === undefined) {
    io.stderr.write(`missing TEXT to tokenize\n${USAGE}\n`);
    return 2;
  }

  // The engine falls back to the shipped vocabulary when a model has no tokenizer/, so this does too;
  // only a folder the user named must exist.
  const dir = parsed.tokenizer ?? (await tokenizerFolderOf(process.env.MASKFLOW_MODEL_DIR || DEFAULT_MODEL_DIR));
  if (!(await isDirectory(dir))) {
    io.stderr.write(`tokenizer folder not found: ${dir}\n--tokenizer DIR must be a folder with vocab.json and merges.txt\n`);
    return 2;
  }

  let tokenizer: ClipTokenizer;
  try {
    tokenizer = await ClipTokenizer.fromFolder(dir);
  } catch (error) {
    io.stderr.write(`${(error as Error).message}\n`);
    return 1;
  }
  const { ids, tokens, truncated, droppedTokens, droppedTokensExact } = tokenizer.encode(parsed.text);
  io.stdout.write(`${JSON.stringify({ ids, tokens, truncated })}\n`);
  if (truncated) {
    io.stderr.write(
      `prompt truncated: ${droppedTokensExact ? "" : "at least "}${droppedTokens} token${droppedTokens === 1 ? "" : "s"} cut ` +
        `(the text encoder takes ${tokenizer.maxLength - 2} plus BOS and EOS)\n`,
    );
  }
  return 0;
}

function parseTokenizeArgs(args: string[]): { tokenizer?: string; text?: string; help: boolean } {
  const { values, positionals } = parseArgs({
    args,
    options: {
      tokenizer: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length > 1) {
    throw new Error(`expected one TEXT argument, got ${positionals.length} (quote the prompt)`);
  }
  return { tokenizer: values.tokenizer, text: positionals[0], help: values.help ?? false };
}

async function isDirectory(dir: string): Promise<boolean> {
  try {
    return (await stat(dir)).isDirectory();
  } catch {
    return false;
  }
}
