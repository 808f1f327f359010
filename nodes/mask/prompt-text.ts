/**
 * The SegmentAnything node's prompt as typed into its widgets: points as "x,y; x,y" (picture pixels, 0,0 at the
 * top left) and a box as "left,top,right,bottom". Every problem names the input and what is allowed.
 */
import type { SamBox, SamPoint } from "../../server/engines/segment/sam-prompt.ts";

const NUMBER = /^\s*-?\d+(\.\d+)?\s*$/;

function numbers(node: string, input: string, text: string, count: number, example: string): number[] {
  const parts = text.split(",");
  if (parts.length !== count || !parts.every((part) => NUMBER.test(part))) {
    throw new Error(`${node}: input \`${input}\` has "${text.trim()}"; expected ${count} numbers separated by commas, e.g. "${example}"`);
  }
  return parts.map(Number);
}

/** "x,y; x,y" → points (empty text → none). */
export function parsePoints(node: string, input: string, text: string, positive: boolean): SamPoint[] {
  return text
    .split(";")
    .filter((part) => part.trim() !== "")
    .map((part) => {
      const [x, y] = numbers(node, input, part, 2, "120,80; 300,40");
      return { x, y, positive };
    });
}

/** "left,top,right,bottom" → a box (empty text → none). */
export function parseBox(node: string, input: string, text: string): SamBox | undefined {
  if (text.trim() === "") return undefined;
  const [left, top, right, bottom] = numbers(node, input, text, 4, "40,30,260,220");
  return { left, top, right, bottom };
}
