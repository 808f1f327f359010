/**
 * `--set 3.positive=a red chair` typed without quotes reaches us as `--set 3.positive=a`, `red`, `chair`:
 * the shell split the value. This finds the words that follow a --set value, so the error can name them
 * and show the quoting that works, instead of a bare usage line.
 */

/** The tokens of node:util parseArgs({ tokens: true }) this needs. */
export type ArgToken =
  | { readonly kind: "option"; readonly name: string; readonly value?: string }
  | { readonly kind: "positional"; readonly value: string }
  | { readonly kind: "option-terminator" };

export interface SplitSetting {
  /** The --set value as received, e.g. `3.positive=a`. */
  readonly setting: string;
  /** The words the shell split off it, e.g. `red`, `chair`. */
  readonly words: readonly string[];
}

export interface RunPositionals {
  /** Positionals that do not follow a --set value: the workflow file, or too many of them. */
  readonly files: readonly string[];
  readonly split: readonly SplitSetting[];
}

export function sortPositionals(tokens: readonly ArgToken[]): RunPositionals {
  const files: string[] = [];
  const groups: { setting: string; words: string[] }[] = [];
  let open: { setting: string; words: string[] } | undefined;
  for (const token of tokens) {
    if (token.kind === "option") {
      open = token.name === "set" && token.value !== undefined ? { setting: token.value, words: [] } : undefined;
      if (open) groups.push(open);
    } else if (token.kind === "positional") {
      if (open) open.words.push(token.value);
      else files.push(token.value);
    } else {
      open = undefined;
    }
  }
  // `run --set 3.positive=a red chair workflow.json`: the last word is the file when nothing else is.
  if (!files.length) {
    const last = groups.findLast((group) => group.words.length);
    if (last) files.push(last.words.pop()!);
  }
  return { files, split: groups.filter((group) => group.words.length) };
}

/** One line per split --set: the words that were cut off and the quoted form to type instead. */
export function describeSplitSetting({ setting, words }: SplitSetting): string {
  const whole = [setting, ...words].join(" ");
  return (
    `--set ${setting} is followed by ${words.map((word) => JSON.stringify(word)).join(", ")}, which the shell split off ` +
    `because the value was not quoted; quote it as one word: --set ${shellQuote(whole)}`
  );
}

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}
