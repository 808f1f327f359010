/**
 * Whether a folder has the files of the optimum ONNX layout that Maskflow loads, each of the kind expected,
 * however the folder came to be (pulled, exported with optimum-cli, generated for tests). Cheap: it reads
 * the small files and the graphs' tensor references, never the weights.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { externalDataOf } from "./onnx-external-data.ts";
import { ProtobufFormatError } from "./protobuf-file-reader.ts";

/** One thing wrong with a model folder: the file (relative to the folder, "/"-separated) and what was expected. */
export interface FolderProblem {
  readonly path: string;
  readonly detail: string;
}

export const ONNX_COMPONENTS = ["text_encoder", "unet", "vae_encoder", "vae_decoder"] as const;

/** What each required file is, for messages that say what was expected. */
const JSON_FILES: Readonly<Record<string, string>> = {
  "model_index.json": "the pipeline description (a JSON object)",
  "scheduler/scheduler_config.json": "the scheduler's settings (a JSON object)",
};
const VOCAB_FILE = "tokenizer/vocab.json";
const MERGES_FILE = "tokenizer/merges.txt";
/** Left beside the final file by an interrupted `models pull` (see download-file.ts). */
const PARTIAL_SUFFIX = ".part";

/** Every problem with the folder's layout; empty when it has what the engine opens. */
export async function checkModelLayout(modelDir: string): Promise<FolderProblem[]> {
  try {
    if (!(await stat(modelDir)).isDirectory()) return [{ path: ".", detail: `${modelDir} is not a folder` }];
  } catch {
    return [{ path: ".", detail: `no such folder: ${modelDir}` }];
  }
  const problems: FolderProblem[] = [];
  for (const [file, what] of Object.entries(JSON_FILES)) {
    const problem = await checkJsonObject(modelDir, file, what);
    if (problem) problems.push(problem);
  }
  problems.push(...(await checkTokenizer(modelDir)));
  for (const component of ONNX_COMPONENTS) problems.push(...(await checkOnnxComponent(modelDir, component)));
  for (const partial of await partialDownloads(modelDir)) {
    problems.push({ path: partial, detail: "partial download left by an interrupted `maskflow models pull`; re-run it to finish" });
  }
  return problems;
}

/**
 * tokenizer/ may be absent: the engine then uses the CLIP vocabulary Maskflow ships (every SD 1.5 model has it).
 * When the folder has one, it is read instead, so it must be whole.
 */
async function checkTokenizer(modelDir: string): Promise<FolderProblem[]> {
  const vocab = await sizeOf(path.join(modelDir, VOCAB_FILE));
  const merges = await sizeOf(path.join(modelDir, MERGES_FILE));
  if (vocab === undefined && merges === undefined) return [];
  const problems: FolderProblem[] = [];
  const vocabProblem = await checkJsonObject(modelDir, VOCAB_FILE, "CLIP's vocabulary (a JSON object of token → id), beside merges.txt");
  if (vocabProblem) problems.push(vocabProblem);
  if (merges === undefined) problems.push({ path: MERGES_FILE, detail: "missing; expected CLIP's BPE merges (a text file) beside vocab.json" });
  else if (merges === 0) problems.push({ path: MERGES_FILE, detail: "empty; expected CLIP's BPE merges (a text file)" });
  return problems;
}

/** The folder's `.part` files, "/"-separated and relative to it. */
export async function partialDownloads(modelDir: string): Promise<string[]> {
  const entries = await readdir(modelDir, { withFileTypes: true, recursive: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith(PARTIAL_SUFFIX))
    .map((entry) => toFolderPath(modelDir, path.join(entry.parentPath, entry.name)))
    .sort();
}

async function checkJsonObject(modelDir: string, file: string, what: string): Promise<FolderProblem | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(modelDir, file), "utf8");
  } catch {
    return { path: file, detail: `missing; expected ${what}` };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { path: file, detail: `not valid JSON (${(error as Error).message}); expected ${what}` };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value) || Object.keys(value).length === 0) {
    return { path: file, detail: `expected ${what}, got ${Array.isArray(value) ? "an array" : value === null ? "null" : typeof value === "object" ? "an empty object" : `a ${typeof value}`}` };
  }
  return undefined;
}

async function checkOnnxComponent(modelDir: string, component: string): Promise<FolderProblem[]> {
  const graph = `${component}/model.onnx`;
  const size = await sizeOf(path.join(modelDir, graph));
  if (size === undefined) return [{ path: graph, detail: `missing; expected the ${component} ONNX model` }];
  if (size === 0) return [{ path: graph, detail: `empty; expected the ${component} ONNX model` }];
  let external;
  try {
    external = await externalDataOf(path.join(modelDir, graph));
  } catch (error) {
    if (!(error instanceof ProtobufFormatError)) throw error;
    return [{ path: graph, detail: `not an ONNX model (${error.message}); expected the ${component} ONNX model` }];
  }
  const problems: FolderProblem[] = [];
  for (const data of external) {
    const location = path.join(modelDir, component, data.location);
    const name = toFolderPath(modelDir, location);
    if (path.isAbsolute(data.location) || !location.startsWith(path.join(modelDir, component) + path.sep)) {
      problems.push({ path: graph, detail: `references external data outside its folder ("${data.location}"); onnxruntime refuses that` });
      continue;
    }
    const reads = `${graph} reads ${data.tensors} tensor(s)${data.bytesNeeded === undefined ? "" : ` (${data.bytesNeeded} bytes)`} from it`;
    const onDisk = await sizeOf(location);
    if (onDisk === undefined) problems.push({ path: name, detail: `missing; ${reads}` });
    else if (data.bytesNeeded !== undefined && onDisk < data.bytesNeeded) problems.push({ path: name, detail: `truncated: ${onDisk} bytes, but ${reads}` });
  }
  return problems;
}

async function sizeOf(file: string): Promise<number | undefined> {
  try {
    const info = await stat(file);
    return info.isFile() ? info.size : undefined;
  } catch {
    return undefined;
  }
}

function toFolderPath(modelDir: string, file: string): string {
  return path.relative(modelDir, file).split(path.sep).join("/");
}
