import path from "node:path";

/** Where models live: `--models DIR`, else $MASKFLOW_MODELS_DIR, else ./models. */
export function resolveModelsDir(option: string | undefined, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  return path.resolve(cwd, option ?? env.MASKFLOW_MODELS_DIR ?? "models");
}

/** A model's folder name: the last part of the repository id ("org/name" → "name"). */
export function modelNameFromRepo(repo: string): string {
  const name = repo.split("/").filter(Boolean).pop() ?? "";
  if (!isSafeModelName(name)) throw new Error(`cannot derive a folder name from "${repo}"; pass --name`);
  return name;
}

export function isSafeModelName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) && name !== "." && name !== "..";
}
