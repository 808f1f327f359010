/** Word wrapping for text drawn on the graph canvas (prompt boxes, error messages under a node). */

/**
 * Lines of `text` no wider than `maxWidth` as `ctx` measures them, keeping its own line breaks; at most `maxLines`.
 * A word wider than a line (a folder path, a URL) is broken where it has to be, since nothing clips canvas text.
 */
export function wrapText(ctx: CanvasRenderingContext2D, text: string, maxWidth: number, maxLines: number): string[] {
  const lines: string[] = [];
  const fits = (candidate: string) => ctx.measureText(candidate).width <= maxWidth;
  for (const paragraph of text.split("\n")) {
    let line = "";
    for (const word of paragraph.split(" ")) {
      const candidate = line ? `${line} ${word}` : word;
      if (fits(candidate)) {
        line = candidate;
        continue;
      }
      if (line) {
        lines.push(line);
        // Measuring is the costly part and a long prompt is redrawn every frame: stop once the box is full.
        if (lines.length >= maxLines) return lines;
      }
      line = word;
      while (!fits(line)) {
        const cut = longestFittingPrefix(line, fits);
        lines.push(line.slice(0, cut));
        if (lines.length >= maxLines) return lines;
        line = line.slice(cut);
      }
    }
    lines.push(line);
    if (lines.length >= maxLines) return lines;
  }
  return lines;
}

/** How many leading characters of `word` fit (at least one, so a line too narrow for any letter still ends). */
function longestFittingPrefix(word: string, fits: (text: string) => boolean): number {
  let low = 1;
  let high = word.length - 1;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (fits(word.slice(0, middle))) low = middle;
    else high = middle - 1;
  }
  return Math.max(1, low);
}
