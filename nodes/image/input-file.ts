/** Reading a file the user named from the input folder, shared by LoadImage and LoadMask. */
import { readFile, stat } from "node:fs/promises";
import type { NodeStorage } from "../node-definition.ts";

/** The file's bytes; a missing name or file is an error naming the node's input and the file. */
export async function readInputFile(storage: NodeStorage, node: string, input: string, filename: string): Promise<Uint8Array> {
  if (filename.trim() === "") {
    throw new Error(`${node}: input \`${input}\` is empty; choose or upload an image`);
  }
  const filePath = storage.inputPath(filename);
  try {
    return await readFile(filePath);
  } catch (error) {
    if (isMissingFile(error)) {
      throw new Error(`${node}: input \`${input}\` names "${filename}", which is not a file in the input folder`);
    }
    throw error;
  }
}

/**
 * Size and modification time, folded into the cache key so replacing the file re-runs the node.
 * A missing file gets its own key; run() then reports it with the input's name.
 */
export async function inputFileFingerprint(storage: NodeStorage, filename: string): Promise<string> {
  try {
    const info = await stat(storage.inputPath(filename));
    return `${info.size}:${info.mtimeMs}`;
  } catch (error) {
    if (isMissingFile(error)) return "missing";
    throw error;
  }
}

function isMissingFile(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR";
}
