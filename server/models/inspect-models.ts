/**
 * Judging model folders for `maskflow models list` and `verify`. Every folder is judged by its layout (the
 * files the engine opens); `verify` also opens its sessions; a pulled folder (one with a pull manifest) is also
 * judged by the sizes (list) or re-hashed checksums (verify) of the files the manifest records.
 */
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { sha256OfFile } from "./file-digest.ts";
import { helperModelFor } from "./helper-model-catalog.ts";
import { checkHelperModelLayout, checkHelperModelSessions } from "./helper-model-layout.ts";
import { checkModelLayout, type FolderProblem, partialDownloads } from "./model-layout.ts";
import { readBuildStamp } from "./checkpoint/build-stamp.ts";
import { MANIFEST_NAME, type ManifestFile, type ModelManifest, readManifest } from "./model-manifest.ts";
import { checkModelSessions } from "./model-sessions.ts";

export { formatBytes } from "./format-bytes.ts";

/**
 * pulled: `models pull` finished and wrote its manifest. built: Maskflow's graphs built from a checkpoint (a
 * build stamp: `models pull` of a checkpoint, `models import`); its provenance is the pull manifest of the
 * checkpoint it was built from, when that was pulled. exported: no manifest and no partial download (an
 * optimum-cli export, a copied folder). unfinished-pull: no manifest yet, partial downloads present.
 * bad-manifest: a manifest that cannot be read.
 */
export type ModelKind = "pulled" | "built" | "exported" | "unfinished-pull" | "bad-manifest";

interface ModelSource {
  readonly kind: ModelKind;
  /** The folder's own pull manifest: the files in it that were downloaded and verified. */
  readonly manifest: ModelManifest | undefined;
  /** Where the model came from: its own manifest, or for a built folder the pull manifest of its checkpoint. */
  readonly provenance: ModelManifest | undefined;
  /** A built folder's checkpoint (file or folder). */
  readonly builtFrom: string | undefined;
  readonly problems: FolderProblem[];
}

async function readSource(modelDir: string): Promise<ModelSource> {
  try {
    const manifest = await readManifest(modelDir);
    if (manifest) return { kind: "pulled", manifest, provenance: manifest, builtFrom: undefined, problems: [] };
  } catch (error) {
    const detail = `not a Maskflow pull manifest (${error instanceof Error ? error.message : String(error)}); re-run \`maskflow models pull\`, or delete it to judge the folder as an export`;
    return { kind: "bad-manifest", manifest: undefined, provenance: undefined, builtFrom: undefined, problems: [{ path: MANIFEST_NAME, detail }] };
  }
  const stamp = await readBuildStamp(modelDir);
  if (stamp) {
    const provenance = typeof stamp.source === "string" ? await readManifest(stamp.source).catch(() => undefined) : undefined;
    return { kind: "built", manifest: undefined, provenance, builtFrom: stamp.source, problems: [] };
  }
  const unfinished = (await partialDownloads(modelDir)).length > 0;
  return { kind: unfinished ? "unfinished-pull" : "exported", manifest: undefined, provenance: undefined, builtFrom: undefined, problems: [] };
}

/** "pulled from ORG/REPO@rev (commit …)", "built from ORG/REPO@rev (commit …)", "exported folder (no pull manifest)", … */
export function describeModelSource(kind: ModelKind, manifest: Pick<ModelManifest, "repo" | "revision" | "commit"> | undefined, builtFrom?: string): string {
  const origin = `${manifest?.repo}@${manifest?.revision}${manifest?.commit && manifest.commit !== manifest.revision ? ` (commit ${manifest.commit.slice(0, 12)})` : ""}`;
  switch (kind) {
    case "pulled":
      return `pulled from ${origin}`;
    case "built":
      return manifest ? `built from ${origin}, checkpoint kept in ${builtFrom}` : `built from the checkpoint ${builtFrom ?? "(unknown)"}`;
    case "exported":
      return "exported folder (no pull manifest)";
    case "unfinished-pull":
      return "unfinished pull (no pull manifest yet)";
    case "bad-manifest":
      return "folder with an unreadable pull manifest";
  }
}

export interface ModelVerification {
  readonly modelDir: string;
  readonly kind: ModelKind;
  /** The folder's own pull manifest (its files are re-hashed), or for a built folder its checkpoint's (provenance only). */
  readonly manifest: ModelManifest | undefined;
  readonly builtFrom?: string;
  /** Files re-hashed against the manifest (0 without one). */
  readonly checkedFiles: number;
  /** Whether the sessions were opened: not while files they need are missing or malformed. */
  readonly sessionsOpened: boolean;
  /** One per problem, layout first, then checksums, then the first thing the session loader stopped at. */
  readonly problems: readonly FolderProblem[];
}

/** The thorough check: layout, checksums of a pulled model (re-hashed), and the engine's own session loader. */
export async function verifyModel(modelDir: string): Promise<ModelVerification> {
  const source = await readSource(modelDir);
  // A helper model (mobile-sam, lama) is judged by its own layout and loader, not the Stable Diffusion one.
  const helper = helperModelFor(path.basename(modelDir), source.manifest?.repo);
  const layout = helper ? await checkHelperModelLayout(modelDir, helper) : await checkModelLayout(modelDir);
  const problems = [...source.problems, ...layout];
  const reported = new Set(problems.map((problem) => problem.path));
  for (const file of source.manifest?.files ?? []) {
    if (reported.has(file.path)) continue;
    const problem = await checksumProblem(modelDir, file);
    if (problem) problems.push(problem);
  }
  // A partial download does not stop the finished files from loading; a missing or malformed one does.
  const sessionsOpened = layout.every((problem) => problem.path.endsWith(".part"));
  if (sessionsOpened) problems.push(...(helper ? await checkHelperModelSessions(modelDir, helper) : await checkModelSessions(modelDir)));
  return { modelDir, kind: source.kind, manifest: source.provenance, builtFrom: source.builtFrom, checkedFiles: source.manifest?.files.length ?? 0, sessionsOpened, problems };
}

async function checksumProblem(modelDir: string, file: ManifestFile): Promise<FolderProblem | undefined> {
  const wrongSize = await sizeProblem(modelDir, file);
  if (wrongSize) return wrongSize;
  const sha256 = await sha256OfFile(path.join(modelDir, file.path));
  return sha256 === file.sha256 ? undefined : { path: file.path, detail: `sha256 ${sha256}, expected ${file.sha256} (the file changed since it was pulled)` };
}

async function sizeProblem(modelDir: string, file: ManifestFile): Promise<FolderProblem | undefined> {
  const size = await stat(path.join(modelDir, file.path)).then((info) => info.size, () => undefined);
  if (size === undefined) return { path: file.path, detail: `missing; the pull manifest records ${file.size} bytes` };
  if (size !== file.size) return { path: file.path, detail: `${size} bytes; the pull manifest records ${file.size}` };
  return undefined;
}

export interface ModelListing {
  readonly name: string;
  readonly modelDir: string;
  readonly kind: ModelKind;
  /** complete: the layout is whole and, for a pulled model, every file has the size the manifest records. Nothing is hashed or opened. */
  readonly status: "complete" | "incomplete";
  readonly bytes: number;
  /** The helper model (mobile-sam, lama) the folder holds; absent for a Stable Diffusion export. */
  readonly helper?: string;
  /** Where it was pulled from; for a built folder, where its checkpoint was pulled from (absent when not pulled). */
  readonly repo?: string;
  readonly revision?: string;
  readonly commit?: string | null;
  /** A built folder's checkpoint (file or folder). */
  readonly builtFrom?: string;
  readonly problems: readonly FolderProblem[];
}

/** Each model folder under `modelsDir`, judged cheaply: layout and sizes, no hashing, no sessions. */
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
    listings.push(await listModel(path.join(modelsDir, entry.name)));
  }
  return listings;
}

/** One model folder judged as `listModels` judges each (its name is the folder's name). */
export async function listModel(modelDir: string): Promise<ModelListing> {
  const source = await readSource(modelDir);
  const helper = helperModelFor(path.basename(modelDir), source.manifest?.repo);
  const problems = [...source.problems, ...(helper ? await checkHelperModelLayout(modelDir, helper) : await checkModelLayout(modelDir))];
  const reported = new Set(problems.map((problem) => problem.path));
  for (const file of source.manifest?.files ?? []) {
    if (reported.has(file.path)) continue;
    const problem = await sizeProblem(modelDir, file);
    if (problem) problems.push(problem);
  }
  return {
    name: path.basename(modelDir),
    modelDir,
    kind: source.kind,
    status: problems.length ? "incomplete" : "complete",
    bytes: await folderSize(modelDir),
    helper: helper?.name,
    repo: source.provenance?.repo,
    revision: source.provenance?.revision,
    commit: source.provenance?.commit,
    builtFrom: source.builtFrom,
    problems,
  };
}

/** Bytes of every file under `dir`, partial downloads included (they use disk too). */
async function folderSize(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name))).size;
  }
  return total;
}
