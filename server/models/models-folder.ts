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

/** The one command that pulls the default model into `modelDir`: bare when that is where it goes anyway. */
export function pullCommandFor(modelDir: string, modelsDir: string, defaultName: string): string {
  const name = path.basename(modelDir);
  const parent = path.dirname(path.resolve(modelDir));
  if (parent === path.resolve(modelsDir) && name === defaultName) return "npx maskflow models pull";
  return `npx maskflow models pull --models ${shellWord(parent)} --name ${shellWord(name)}`;
}

function shellWord(word: string): string {
  return /^[\w./:@%+=,-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}
