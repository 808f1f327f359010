import path from "node:path";
import { fileURLToPath } from "node:url";
import { DataFolders } from "../storage/data-folders.ts";

/** The shipped examples (workflows/ and its pictures); worked out here so `validate` need not load the server. */
const SHIPPED_WORKFLOWS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "workflows");

/**
 * The data folder as `run` and `validate` see it: pictures a workflow names are looked up in DATA/input,
 * next to the workflow file, then among the shipped examples. Nothing is created here: a folder appears
 * only when something is written into it.
 */
export function cliDataFolders(options: { workflowFile: string; data?: string; out?: string; temp?: string }): DataFolders {
  return new DataFolders(options.data ?? path.join(process.cwd(), "data"), {
    output: options.out,
    temp: options.temp,
    extraInputRoots: [path.dirname(path.resolve(options.workflowFile)), SHIPPED_WORKFLOWS],
  });
}
