import { randomBytes } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { readdir, rm, rmdir } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { SingleBar } from "cli-progress";
import { createBuiltinRegistry } from "../../nodes/index.ts";
import { createEngines } from "../engines/create-engines.ts";
import type { ExecutionEvent } from "../executor/execution-event.ts";
import { Executor } from "../executor/executor.ts";
import { JobInterruptedError } from "../executor/job-interrupted.ts";
import { SettingsStore, segmindKeyFrom } from "../storage/settings-store.ts";
import { validateWorkflow } from "../workflow/validate-workflow.ts";
import { formatProblem } from "../workflow/workflow-problem.ts";
import { cliDataFolders } from "./cli-data-folders.ts";
import type { LoraUse } from "../models/checkpoint/model-recipe.ts";
import { parseLoraOption } from "./lora-option.ts";
import type { CliIo } from "./cli-io.ts";
import { readWorkflowFile } from "./read-workflow-file.ts";
import { runBatch } from "./run-batch.ts";
import { applyOverrides } from "./set-overrides.ts";
import { describeSplitSetting, sortPositionals } from "./stray-set-words.ts";

const USAGE =
  "usage: maskflow run WORKFLOW.json [--set NODE.INPUT=VALUE ...] [--batch NODE.INPUT=FOLDER ...] [--out DIR] [--data DIR] [--model DIR|CHECKPOINT] [--lora FILE[:SM[:SC]] ...] [--device cpu|cuda] [--json]";

export async function runCommand(args: string[], io: CliIo): Promise<number> {
  const { values, tokens } = parseArgs({
    args,
    allowPositionals: true,
    tokens: true,
    options: {
      set: { type: "string", multiple: true, default: [] },
      batch: { type: "string", multiple: true, default: [] },
      out: { type: "string" },
      data: { type: "string" },
      model: { type: "string" },
      lora: { type: "string", multiple: true, default: [] },
      device: { type: "string" },
      json: { type: "boolean" },
    },
  });
  const { files: workflowFiles, split } = sortPositionals(tokens);
  if (split.length) {
    for (const setting of split) io.stderr.write(`maskflow run: ${describeSplitSetting(setting)}\n`);
    return 2;
  }
  if (workflowFiles.length !== 1) {
    if (workflowFiles.length > 1) {
      io.stderr.write(`maskflow run: one workflow file at a time; got ${workflowFiles.length}: ${workflowFiles.join(", ")}\n`);
    }
    io.stderr.write(USAGE + "\n");
    return 2;
  }
  const [name] = workflowFiles;
  const out = values.out === undefined ? undefined : path.resolve(values.out);
  if (out && existsSync(out) && !statSync(out).isDirectory()) {
    io.stderr.write(`maskflow run: --out ${values.out} is a file; --out names a folder (created if missing)\n`);
    return 2;
  }
  const workflow = applyOverrides(await readWorkflowFile(name), values.set ?? []);
  const dataRoot = values.data ?? path.join(process.cwd(), "data");
  // Previews (Inpaint's, PreviewImage's) have no viewer once the run ends: they go to a folder of this run's
  // own, removed at the end. With --out it lies inside --out, so a run with --out writes nothing anywhere else.
  const runTemp = path.join(out ?? path.join(dataRoot, "temp"), `.maskflow-run-${randomBytes(4).toString("hex")}`);
  const outExisted = out !== undefined && existsSync(out);
  // Nothing is created up front: output/ and the temp folder appear with their first file.
  const folders = cliDataFolders({ workflowFile: name, data: dataRoot, out, temp: runTemp });
  const registry = createBuiltinRegistry();
  let loras: LoraUse[];
  try {
    loras = await Promise.all((values.lora ?? []).map((value) => parseLoraOption(value)));
  } catch (error) {
    io.stderr.write(`maskflow run: ${(error as Error).message}\n`);
    return 2;
  }

  if (values.batch?.length) {
    const abort = new AbortController();
    const onSigint = () => abort.abort(new JobInterruptedError());
    process.once("SIGINT", onSigint);
    try {
      return await runBatch({
        io,
        name,
        workflow,
        specs: values.batch,
        json: Boolean(values.json),
        folders,
        registry,
        signal: abort.signal,
        createEngines: async () =>
          createEngines({ modelDir: values.model, loras, device: values.device, segmind: { apiKey: segmindKeyFrom(await new SettingsStore(folders.settingsFile).load()) } }),
      });
    } finally {
      process.off("SIGINT", onSigint);
      await rm(runTemp, { recursive: true, force: true });
      if (out && !outExisted) await removeIfEmpty(out);
    }
  }

  // Every check that needs no model, the input files included, before any engine is set up.
  const validation = validateWorkflow(workflow, registry, { requireOutputNode: true, files: folders });
  if (!validation.ok) {
    io.stderr.write(`${name}: ${validation.problems.length} problem(s)\n`);
    for (const problem of validation.problems) io.stderr.write(`  - ${formatProblem(problem)}\n`);
    return 2;
  }
  const valid = validation.workflow;

  const settings = await new SettingsStore(folders.settingsFile).load();
  const engines = await createEngines({ modelDir: values.model, loras, device: values.device, segmind: { apiKey: segmindKeyFrom(settings) } });
  const executor = new Executor({ registry, storage: folders, engines: engines.nodeEngines });
  const abort = new AbortController();
  const onSigint = () => abort.abort(new JobInterruptedError());
  process.once("SIGINT", onSigint);
  const progress = createProgressView(io, new Map(valid.nodes.map((node) => [node.id, node.type])));
  try {
    const result = await executor.run(valid, { jobId: `cli-${Date.now()}`, signal: abort.signal, onEvent: progress.onEvent });
    progress.stop();
    // What the run saved (SaveImage); the pictures nodes only show (previews in temp/) are not results.
    const files = Object.entries(result.outputs).flatMap(([node, record]) =>
      record.images
        .filter((image) => image.type === "output")
        .map((image) => ({ node, path: path.join(folders.folder(image.type), image.subfolder, image.filename) })),
    );
    const reported = Object.fromEntries(
      Object.entries(result.outputs).filter(([, record]) => Object.keys(record.values).length).map(([node, record]) => [node, record.values]),
    );
    if (values.json) {
      io.stdout.write(JSON.stringify({ status: result.status, files, values: reported, error: result.error ?? null }) + "\n");
    } else {
      for (const output of files) io.stdout.write(`${output.path}\n`);
      for (const [node, record] of Object.entries(reported)) io.stderr.write(`node ${node}: ${JSON.stringify(record)}\n`);
    }
    if (result.status === "error") {
      const where = result.error?.node ? `node ${result.error.node} (${result.error.nodeType}): ` : "";
      io.stderr.write(`maskflow run: failed at ${where}${result.error?.message}\n`);
      return 1;
    }
    if (result.status === "interrupted") {
      io.stderr.write("maskflow run: interrupted\n");
      return 130;
    }
    return 0;
  } finally {
    progress.stop();
    process.off("SIGINT", onSigint);
    await engines.dispose();
    await rm(runTemp, { recursive: true, force: true });
    if (out && !outExisted) await removeIfEmpty(out);
  }
}

/** A run that saved nothing leaves no --out folder it made; one that held files before is left alone. */
async function removeIfEmpty(folder: string): Promise<void> {
  try {
    if ((await readdir(folder)).length === 0) await rmdir(folder);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}

/** A progress bar on a terminal; plain lines when the output is a file or a pipe. */
function createProgressView(io: CliIo, types: ReadonlyMap<string, string>): { onEvent: (event: ExecutionEvent) => void; stop: () => void } {
  let bar: SingleBar | undefined;
  let barLabel = "";
  let node = "";
  let lastLine = 0;
  const tty = Boolean(io.stderr.isTTY);
  const stop = () => {
    bar?.stop();
    bar = undefined;
  };
  return {
    stop,
    onEvent(event) {
      if (event.type === "executing") {
        stop();
        node = `${event.node} (${types.get(event.node) ?? "?"})`;
      } else if (event.type === "progress") {
        const label = event.label ?? "";
        if (tty) {
          // A new phase (the model loading, then the steps) gets its own bar.
          if (bar && label !== barLabel) stop();
          if (!bar) {
            barLabel = label;
            bar = new SingleBar({ format: `node ${node} ${label ? `${label} ` : ""}[{bar}] {value}/{total} {eta_formatted}`, stream: io.stderr, hideCursor: true });
            bar.start(event.max, event.value);
          } else {
            bar.setTotal(event.max);
            bar.update(event.value);
          }
        } else if (event.value === event.max || Date.now() - lastLine > 1000) {
          lastLine = Date.now();
          io.stderr.write(`node ${node}: ${label ? `${label} ` : ""}${event.value}/${event.max}\n`);
        }
      }
    },
  };
}
