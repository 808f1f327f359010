/**
 * A request body's bytes to a value, refused when it breaks the shape limits (json-shape.ts). Pure, so
 * the compute pool runs it on a worker thread for any body big enough to cost the event loop time.
 */
import { parseSegmindJsonBody } from "../engines/segmind/segmind-request.ts";
import { jsonShapeProblem } from "./json-shape.ts";

export type BoundedJsonResult =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly code: "malformed_json" | "too_large"; readonly message: string; readonly field?: string };

export interface BoundedJsonOptions {
  /** Segmind's bodies: a bare integer seed past 2^53 is kept as its decimal digits (segmind-request.ts). */
  readonly keepLongSeeds?: boolean;
}

const decoder = new TextDecoder("utf-8");

export function parseBoundedJson(bytes: Uint8Array, options: BoundedJsonOptions = {}): BoundedJsonResult {
  const text = decoder.decode(bytes);
  // As express.json's strict mode: a body is an object or an array, not a bare string or number.
  const first = /\S/.exec(text.slice(0, 4096))?.[0];
  if (first !== "{" && first !== "[") {
    return { ok: false, code: "malformed_json", message: "request body is not valid JSON: it must be an object or an array" };
  }
  let value: unknown;
  try {
    value = options.keepLongSeeds ? parseSegmindJsonBody(text) : JSON.parse(text);
  } catch (error) {
    return { ok: false, code: "malformed_json", message: `request body is not valid JSON: ${(error as Error).message.slice(0, 300)}` };
  }
  const problem = jsonShapeProblem(value);
  if (problem) return { ok: false, code: "too_large", message: problem.message, field: problem.field };
  return { ok: true, value };
}
