/** Reading a file the user named from the input folder, shared by LoadImage and LoadMask. */
import { statSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import type { CheckContext, InputProblem, NodeStorage } from "../node-definition.ts";

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

/**
 * The check before a run: the name is not empty and, where the folders are known, names a file in one of
 * them, found as run() will find it. Reading the picture is left to run(): a check stays cheap.
 */
export function inputFileProblems<Name extends string>(ctx: CheckContext, input: Name, filename: string | undefined): InputProblem<Name>[] {
  if (filename === undefined) return [];
  if (filename.trim() === "") return [{ input, message: "is empty; choose or upload an image" }];
  if (!ctx.files) return [];
  let filePath: string;
  try {
    filePath = ctx.files.inputPath(filename);
  } catch (error) {
    return [{ input, message: (error as Error).message }];
  }
  let isFile = false;
  try {
    isFile = statSync(filePath).isFile();
  } catch (error) {
    if (!isMissingFile(error)) throw error;
  }
  if (isFile) return [];
  const folders = ctx.files.inputFolders;
  const where = folders.length > 1 ? `any of ${folders.join(", ")}` : folders.join("");
  return [{ input, message: `names "${filename}", which is not a file in ${where}` }];
}
