/**
 * The stamp a checkpoint build writes last into the folder it built: its content key and what it was built from.
 * Its own module so that the main thread can read stamps without loading the graph builders.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";

/** Written last into a built folder: its key and what it was built from. */
export const BUILD_STAMP = ".maskflow-build.json";

export interface BuildStamp {
  readonly key: string;
  readonly source: string;
  readonly builtAt: string;
  readonly builderVersion: number;
}

/** The stamp of a folder a build wrote, undefined when there is none (or it is not JSON with a key). */
export async function readBuildStamp(dir: string): Promise<BuildStamp | undefined> {
  try {
    const stamp = JSON.parse(await readFile(path.join(dir, BUILD_STAMP), "utf8")) as BuildStamp;
    return typeof stamp === "object" && stamp !== null && typeof stamp.key === "string" ? stamp : undefined;
  } catch {
    return undefined;
  }
}
