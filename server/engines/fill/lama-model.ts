/**
 * A LaMa model folder in the layout of Carve/LaMa-ONNX's lama_fp32.onnx: one .onnx file with inputs `image`
 * (batch×3×S×S, RGB in 0..1) and `mask` (batch×1×S×S, 1 = fill) and output `output` (batch×3×S×S, RGB in 0..255).
 * S is the side the export fixes (512 for Carve's); an export that leaves it open is run at 512.
 */
import { readdir, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { FolderProblem } from "../../models/model-layout.ts";
import { type DeviceName, ModelLoadError, OnnxSession } from "../onnx/onnx-session.ts";
import { ModelLayoutError, sessionProblems } from "../onnx/value-layout.ts";

/** The side a LaMa export without a fixed one is run at (LaMa was trained at 256–512; Carve's export fixes 512). */
export const DEFAULT_LAMA_SIZE = 512;
const WHAT = "a LaMa export (Carve/LaMa-ONNX's layout)";

export interface LamaModel {
  readonly dir: string;
  readonly session: OnnxSession;
  /** The square side the model works at. */
  readonly size: number;
  release(): Promise<void>;
}

/** The folder's one .onnx file (lama_fp32.onnx preferred when there are several). */
export async function findLamaFile(dir: string): Promise<{ file?: string; problems: FolderProblem[] }> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => name.toLowerCase().endsWith(".onnx")).sort();
  } catch {
    return { problems: [{ path: ".", detail: `no such folder: ${dir}; pull one with \`maskflow models pull lama\`` }] };
  }
  if (names.length === 1) return { file: path.join(dir, names[0]), problems: [] };
  if (names.includes("lama_fp32.onnx")) return { file: path.join(dir, "lama_fp32.onnx"), problems: [] };
  return {
    problems: [{ path: ".", detail: names.length ? `several .onnx files (${names.join(", ")}); keep one, or name it lama_fp32.onnx` : "no .onnx file: expected lama_fp32.onnx (Carve/LaMa-ONNX)" }],
  };
}

export async function loadLamaModel(dir: string, options: { device?: DeviceName; threads?: number } = {}): Promise<LamaModel> {
  const root = path.resolve(dir);
  const found = await findLamaFile(root);
  if (!found.file) throw new ModelLayoutError(root, found.problems, WHAT);
  if ((await stat(found.file)).size === 0) throw new ModelLoadError(found.file, "empty; pull the model again");
  const session = await OnnxSession.create(found.file, found.file, { device: options.device ?? "cpu", threads: options.threads ?? os.availableParallelism() });
  const declared = session.inputs.get("image")?.shape[2];
  const size = typeof declared === "number" && declared > 0 ? declared : DEFAULT_LAMA_SIZE;
  const problems = sessionProblems(
    session,
    root,
    [
      { name: "image", dims: ["batch", 3, size, size] },
      { name: "mask", dims: ["batch", 1, size, size] },
    ],
    [{ name: "output", dims: ["batch", 3, size, size] }],
  );
  if (size % 8 !== 0) problems.push({ path: path.basename(found.file), detail: `input "image" is ${size}×${size}; LaMa needs a side divisible by 8` });
  if (problems.length) {
    await session.release();
    throw new ModelLayoutError(root, problems, WHAT);
  }
  return { dir: root, session, size, release: () => session.release() };
}
