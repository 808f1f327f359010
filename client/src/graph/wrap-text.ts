/** Word wrapping for text drawn on the graph canvas (prompt boxes, error messages under a node). */

/** Lines of `text` no wider than `maxWidth` as `ctx` measures them, keeping its own line breaks; at most `maxLines`. */
export function wrapText(ctx: CanvasRenderingContext2D, text: string, maxWidth: number, maxLines: number): string[] {
  const lines: string[] = [];
  for (const paragraph of text.split("\n")) {
    let line = "";
    for (const word of paragraph.split(" ")) {
      const candidate = line ? `${line} ${word}` : word;
      if (line && ctx.measureText(candidate).width > maxWidth) {
        lines.push(line);
        // Measuring is the costly part and a long prompt is redrawn every frame: stop once the box is full.
        if (lines.length >= maxLines) return lines;
        line = word;
      } else line = candidate;
    }
    lines.push(line);
    if (lines.length >= maxLines) return lines;
  }
  return lines;
}
