/**
 * Where and why a text is not JSON, as line and column. JSON.parse's own message gives no position for
 * most mistakes and quotes the text around it, which may be anything; this walks the grammar instead and
 * describes the character it stopped at without echoing the file.
 */

export interface JsonSyntaxError {
  readonly line: number;
  readonly column: number;
  readonly reason: string;
}

const MAX_DEPTH = 5_000;

/** The first syntax error in `text`, or undefined when it is valid JSON. */
export function findJsonSyntaxError(text: string): JsonSyntaxError | undefined {
  let at = 0;
  const fail = (reason: string): never => {
    throw new SyntaxAt(at, reason);
  };
  const describe = (): string => (at >= text.length ? "the text ends" : `unexpected ${showChar(String.fromCodePoint(text.codePointAt(at)!))}`);
  const skipSpace = () => {
    while (at < text.length && " \t\n\r".includes(text[at])) at++;
  };
  const expectWord = (word: string) => {
    for (const char of word) {
      if (text[at] !== char) fail(`${describe()} in "${word}"`);
      at++;
    }
  };
  const string = () => {
    at++; // the opening quote
    while (at < text.length && text[at] !== '"') {
      const code = text.charCodeAt(at);
      if (code < 0x20) fail(`${showChar(text[at])} inside a string; write it as an escape such as \\n`);
      if (text[at] === "\\") {
        at++;
        if (text[at] === "u") {
          at++;
          for (let i = 0; i < 4; i++, at++) if (!/[0-9a-fA-F]/.test(text[at] ?? "")) fail(`${describe()} in a \\u escape (four hex digits)`);
          continue;
        }
        if (!'"\\/bfnrt'.includes(text[at] ?? "x")) fail(`${describe()} after a backslash; escapes are \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX`);
      }
      at++;
    }
    if (at >= text.length) fail("the text ends inside a string (a closing \" is missing)");
    at++;
  };
  const number = () => {
    if (text[at] === "-") at++;
    if (text[at] === "0") at++;
    else if (/[1-9]/.test(text[at] ?? "")) while (/[0-9]/.test(text[at] ?? "")) at++;
    else fail(`${describe()} in a number`);
    if (text[at] === ".") {
      at++;
      if (!/[0-9]/.test(text[at] ?? "")) fail(`${describe()} after a decimal point`);
      while (/[0-9]/.test(text[at] ?? "")) at++;
    }
    if (text[at] === "e" || text[at] === "E") {
      at++;
      if (text[at] === "+" || text[at] === "-") at++;
      if (!/[0-9]/.test(text[at] ?? "")) fail(`${describe()} in an exponent`);
      while (/[0-9]/.test(text[at] ?? "")) at++;
    }
  };
  const value = (depth: number): void => {
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH} levels`);
    skipSpace();
    const char = text[at];
    if (char === "{") {
      at++;
      skipSpace();
      if (text[at] === "}") {
        at++;
        return;
      }
      for (;;) {
        skipSpace();
        if (text[at] !== '"') fail(`${describe()} where a property name in double quotes was expected`);
        string();
        skipSpace();
        if (text[at] !== ":") fail(`${describe()} where ":" was expected after a property name`);
        at++;
        value(depth + 1);
        skipSpace();
        if (text[at] === "}") {
          at++;
          return;
        }
        if (text[at] !== ",") fail(`${describe()} where "," or "}" was expected`);
        at++;
      }
    } else if (char === "[") {
      at++;
      skipSpace();
      if (text[at] === "]") {
        at++;
        return;
      }
      for (;;) {
        value(depth + 1);
        skipSpace();
        if (text[at] === "]") {
          at++;
          return;
        }
        if (text[at] !== ",") fail(`${describe()} where "," or "]" was expected`);
        at++;
      }
    } else if (char === '"') {
      string();
    } else if (char === "-" || /[0-9]/.test(char ?? "")) {
      number();
    } else if (char === "t") {
      expectWord("true");
    } else if (char === "f") {
      expectWord("false");
    } else if (char === "n") {
      expectWord("null");
    } else {
      fail(`${describe()} where a value was expected`);
    }
  };
  try {
    value(0);
    skipSpace();
    if (at < text.length) fail(`${describe()} after the end of the JSON value`);
    return undefined;
  } catch (error) {
    if (!(error instanceof SyntaxAt)) throw error;
    return { ...lineAndColumn(text, error.offset), reason: error.reason };
  }
}

class SyntaxAt extends Error {
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === "\n") {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

/** A character shown safely: printable ones quoted, others by their code. */
function showChar(char: string): string {
  const code = char.codePointAt(0) ?? 0;
  if (char === "\n") return "a line break";
  if (char === "\t") return "a tab";
  if (code < 0x20 || code === 0x7f || (code >= 0x80 && code < 0xa0) || (code >= 0xd800 && code < 0xe000) || code === 0xfffd) return `character U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
  return `"${char}"`;
}
