import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { sha256OfFile } from "./file-digest.ts";
import { type ModelManifest, readManifest } from "./model-manifest.ts";
import { missingRequiredFiles } from "./onnx-layout.ts";

export type FileProblem = { path: string; problem: "missing" | "size" | "checksum"; detail: string };

export interface ModelVerification {
  readonly modelDir: string;
  readonly manifest: ModelManifest | undefined;
  readonly checkedFiles: number;
  /** Empty when every file the manifest lists is present with its recorded size and sha256. */
  readonly problems: readonly FileProblem[];
}

/** Re-hashes every file of a pulled model against its manifest and reports each one that is missing or differs. */
export async function verifyModel(modelDir: string): Promise<ModelVerification> {
  const manifest = await readManifest(modelDir);
  if (!manifest) {
    return { modelDir, manifest, checkedFiles: 0, problems: [{ path: ".maskflow-model.json", problem: "missing", detail: "no manifest: the pull did not finish (re-run `maskflow models pull`)" }] };
  }
  const problems: FileProblem[] = [];
  for (const file of manifest.files) {
    const filePath = path.join(modelDir, file.path);
    let size: number;
    try {
      size = (await stat(filePath)).size;
    } catch {
      problems.push({ path: file.path, problem: "missing", detail: "file is missing" });
      continue;
    }
    if (size !== file.size) {
      problems.push({ path: file.path, problem: "size", detail: `size ${size}, expected ${file.size}` });
      continue;
    }
    const sha256 = await sha256OfFile(filePath);
    if (sha256 !== file.sha256) problems.push({ path: file.path, problem: "checksum", detail: `sha256 ${sha256}, expected ${file.sha256}` });
  }
  return { modelDir, manifest, checkedFiles: manifest.files.length, problems };
}

export interface ModelListing {
  readonly name: string;
  readonly modelDir: string;
  /** complete: a manifest exists and lists every file the pipeline needs (sizes are checked, not hashes). */
  readonly status: "complete" | "incomplete";
  readonly bytes: number;
  readonly repo?: string;
  readonly revision?: string;
  readonly reason?: string;
}

/** Each model folder under `modelsDir` with its status and size on disk. Cheap: sizes only, no hashing. */
export async function listModels(modelsDir: string): Promise<ModelListing[]> {
  let entries;
  try {
    entries = await readdir(modelsDir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  const listings: ModelListing[] = [];
  for (const entry of entries.filter((e) => e.isDirectory() && !e.name.startsWith(".")).sort((a, b) => a.name.localeCompare(b.name))) {
    const modelDir = path.join(modelsDir, entry.name);
    const bytes = await folderSize(modelDir);
    let manifest: ModelManifest | undefined;
    let reason: string | undefined;
    try {
      manifest = await readManifest(modelDir);
    } catch (error) {
      reason = error instanceof Error ? error.message : String(error);
    }
    if (manifest) reason = await quickCheck(modelDir, manifest);
    else reason ??= "no manifest (download not finished, or not pulled by maskflow)";
    listings.push({ name: entry.name, modelDir, status: reason ? "incomplete" : "complete", bytes, repo: manifest?.repo, revision: manifest?.revision, reason });
  }
  return listings;
}

async function quickCheck(modelDir: string, manifest: ModelManifest): Promise<string | undefined> {
  const missingRequired = missingRequiredFiles(manifest.files.map((file) => file.path));
  if (missingRequired.length) return `manifest lacks ${missingRequired.join(", ")}`;
  for (const file of manifest.files) {
    const size = await stat(path.join(modelDir, file.path)).then((s) => s.size, () => -1);
    if (size < 0) return `${file.path} is missing`;
    if (size !== file.size) return `${file.path} has size ${size}, expected ${file.size}`;
  }
  return undefined;
}

/** Bytes of every file under `dir`, partial downloads included (they use disk too). */
async function folderSize(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name))).size;
  }
  return total;
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}
