import path from "node:path";
import { isSafeModelName } from "./models-folder.ts";

/**
 * The folder a node's `model` input names: empty → the helper model's own folder under the models folder
 * (where `maskflow models pull NAME` puts it), a bare name → that folder under the models folder, anything
 * else → a path (as the Inpaint node's `model` is).
 */
export function helperModelDir(value: string | undefined, defaultName: string, modelsDir: string): string {
  const text = value?.trim() ?? "";
  if (text === "") return path.join(modelsDir, defaultName);
  if (isSafeModelName(text)) return path.join(modelsDir, text);
  return path.resolve(text);
}
