/**
 * Judging a helper model folder (models/mobile-sam, models/lama) for `models list` and `verify`: its files as the
 * loader finds them (cheap), and, for verify, the loader itself, which opens the sessions and checks every input
 * and output against the layout the engine feeds.
 */
import { readdirSync } from "node:fs";
import path from "node:path";
import { findLamaFile, loadLamaModel } from "../engines/fill/lama-model.ts";
import { ModelLoadError } from "../engines/onnx/onnx-session.ts";
import { ModelLayoutError } from "../engines/onnx/value-layout.ts";
import { findSamFiles, loadSamModel } from "../engines/segment/sam-model.ts";
import type { HelperModel } from "./helper-model-catalog.ts";
import { type FolderProblem, partialDownloads } from "./model-layout.ts";

export async function checkHelperModelLayout(modelDir: string, model: HelperModel): Promise<FolderProblem[]> {
  const found = model.kind === "segment-anything" ? await findSamFiles(modelDir) : await findLamaFile(modelDir);
  const problems = [...found.problems];
  for (const partial of await partialDownloads(modelDir)) {
    problems.push({ path: partial, detail: `partial download left by an interrupted \`maskflow models pull ${model.name}\`; re-run it to finish` });
  }
  return problems;
}

/** Every problem the loader finds (each wrong input or output), or none when the model opens; sessions are released. */
export async function checkHelperModelSessions(modelDir: string, model: HelperModel): Promise<FolderProblem[]> {
  try {
    const loaded = model.kind === "segment-anything" ? await loadSamModel(modelDir, { threads: 1 }) : await loadLamaModel(modelDir, { threads: 1 });
    await loaded.release();
    return [];
  } catch (error) {
    if (error instanceof ModelLayoutError) return [...error.problems];
    if (error instanceof ModelLoadError) {
      const relative = path.relative(path.resolve(modelDir), error.file).split(path.sep).join("/");
      const detail = error.message.startsWith(`${error.file}: `) ? error.message.slice(error.file.length + 2) : error.message;
      return [{ path: relative && !relative.startsWith("..") ? relative : ".", detail }];
    }
    return [{ path: ".", detail: `the engine could not load it: ${error instanceof Error ? error.message : String(error)}` }];
  }
}

/**
 * Whether the folder holds the files the loader looks for (an encoder and a decoder, or a LaMa .onnx): cheap and
 * synchronous, for status lines (GET /api/system, `maskflow serve`); `models verify` is the thorough check.
 */
export function helperModelPresent(modelDir: string, model: HelperModel): boolean {
  let names: string[];
  try {
    names = readdirSync(modelDir).filter((name) => name.toLowerCase().endsWith(".onnx") && !name.endsWith(".part"));
  } catch {
    return false;
  }
  if (model.kind === "learned-fill") return names.length > 0;
  return names.some((name) => /encoder/i.test(name)) && names.some((name) => /decoder/i.test(name));
}
