import { readFile } from "node:fs/promises";
import { readWorkflowFromPng } from "../../nodes/image/png-workflow-chunk.ts";

/** A workflow from a .json file, or from a PNG that SaveImage wrote (its tEXt chunk). */
export async function readWorkflowFile(file: string): Promise<unknown> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new Error(`cannot read workflow file "${file}": ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) {
    const workflow = readWorkflowFromPng(bytes);
    if (workflow === undefined) throw new Error(`"${file}" is a PNG without a Maskflow workflow in it`);
    return workflow;
  }
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    throw new Error(`"${file}" is not valid JSON: ${(error as Error).message}`);
  }
}
