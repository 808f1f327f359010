import { readFile } from "node:fs/promises";
import { readWorkflowFromPng } from "../../nodes/image/png-workflow-chunk.ts";
import { detectFileKind } from "./file-kind.ts";
import { findJsonSyntaxError } from "./json-syntax-error.ts";

/**
 * A workflow from a .json file, or from a PNG that SaveImage wrote (its tEXt chunk). Anything else is
 * named for what it is; a message never quotes the file's bytes, which may be binary.
 */
export async function readWorkflowFile(file: string): Promise<unknown> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new Error(`cannot read workflow file "${file}": ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const kind = detectFileKind(bytes);
  if (kind?.pictureFormat === "PNG") {
    const workflow = readWorkflowFromPng(bytes);
    if (workflow === undefined) throw new Error(`"${file}" is a PNG without a Maskflow workflow in it`);
    return workflow;
  }
  if (kind) {
    const why = kind.pictureFormat
      ? `a PNG written by SaveImage carries its workflow, a ${kind.pictureFormat} does not`
      : "a workflow is a .json file, or a PNG written by SaveImage";
    throw new Error(`"${file}" is ${kind.description}, not a workflow: ${why}`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new Error(`"${file}" is not a text file (it is not UTF-8), so not a workflow: a workflow is a .json file, or a PNG written by SaveImage`);
  }
  if (text.includes("\0")) {
    throw new Error(`"${file}" holds binary data, not a workflow: a workflow is a .json file, or a PNG written by SaveImage`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    const where = findJsonSyntaxError(text);
    // The walk and JSON.parse agree on what JSON is; should they ever differ, JSON.parse's kind of error is still named.
    const detail = where ? `line ${where.line}, column ${where.column}: ${where.reason}` : (error as Error).name;
    throw new Error(`"${file}" is not JSON (${detail})`);
  }
}
