/**
 * Checking a session's declared inputs and outputs against the layout an export is documented to have, one
 * message per value that differs (missing, wrong rank, a fixed dimension of another size, an element type the
 * engine cannot feed), so a wrong file is named with everything wrong about it at once.
 */
import path from "node:path";
import type { FolderProblem } from "../../models/model-layout.ts";
import { ModelLoadError, type OnnxSession, type ValueSpec } from "./onnx-session.ts";

/** A dimension the layout fixes (a number) or leaves to the export (a name, for the message only). */
export type ExpectedDim = number | string;

export interface ExpectedValue {
  readonly name: string;
  readonly dims: readonly ExpectedDim[];
  /** Element types accepted; float32 and float16 by default (OnnxSession converts float16 at the boundary). */
  readonly types?: readonly string[];
}

const FLOAT_TYPES = ["float32", "float16"];

function formatDims(dims: readonly (number | string)[]): string {
  return `[${dims.map((dim) => (typeof dim === "number" && dim >= 0 ? String(dim) : String(dim))).join(", ")}]`;
}

/** What is wrong with one declared value, or undefined when it matches (symbolic dims match any fixed size). */
export function valueProblem(session: OnnxSession, kind: "input" | "output", expected: ExpectedValue): string | undefined {
  const values = kind === "input" ? session.inputs : session.outputs;
  const spec: ValueSpec | undefined = values.get(expected.name);
  if (!spec) {
    const names = [...values.keys()].map((name) => `"${name}"`).join(", ") || "none";
    return `${kind} "${expected.name}" ${formatDims(expected.dims)} is missing; the file's ${kind}s are ${names}`;
  }
  const types = expected.types ?? FLOAT_TYPES;
  if (!types.includes(spec.type)) return `${kind} "${spec.name}" is ${spec.type}; expected ${types.join(" or ")}`;
  const fixedMismatch = spec.shape.some((dim, i) => typeof dim === "number" && dim >= 0 && typeof expected.dims[i] === "number" && dim !== expected.dims[i]);
  if (spec.shape.length !== expected.dims.length || fixedMismatch) {
    return `${kind} "${spec.name}" has shape ${formatDims(spec.shape)}; expected ${formatDims(expected.dims)}`;
  }
  return undefined;
}

/** Every problem of a session against its expected inputs and outputs, each naming the file. */
export function sessionProblems(session: OnnxSession, root: string, inputs: readonly ExpectedValue[], outputs: readonly ExpectedValue[]): FolderProblem[] {
  const file = path.relative(root, session.file).split(path.sep).join("/") || path.basename(session.file);
  const details = [...inputs.map((value) => valueProblem(session, "input", value)), ...outputs.map((value) => valueProblem(session, "output", value))];
  return details.filter((detail): detail is string => detail !== undefined).map((detail) => ({ path: file, detail }));
}

/** A helper model folder that does not have the expected layout: every problem found, each on its own line. */
export class ModelLayoutError extends ModelLoadError {
  constructor(
    dir: string,
    readonly problems: readonly FolderProblem[],
    what: string,
  ) {
    super(dir, `not ${what}:\n${problems.map((problem) => `  - ${problem.path}: ${problem.detail}`).join("\n")}`);
    this.name = "ModelLayoutError";
  }
}
