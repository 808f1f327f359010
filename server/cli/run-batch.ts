/**
 * `maskflow run WORKFLOW --batch 1.image=photos [--batch 2.image=masks]`: the workflow once per picture,
 * the folders' pictures paired by name. One executor runs every picture, so what does not depend on the
 * picture (the prompt, the scheduler, a second LoadImage) runs once and comes from its cache after, and
 * the model loads once. A picture that fails, or has no partner, is reported and the batch goes on.
 */
import path from "node:path";
import type { NodeRegistry } from "../../nodes/registry.ts";
import { type BatchTarget, batchTargetProblems, parseTargetKey, workflowForItem } from "../batch/batch-target.ts";
import { BatchFolderError, listFolderPictures } from "../batch/folder-pictures.ts";
import { pairByStem } from "../batch/pair-by-stem.ts";
import type { Engines } from "../engines/create-engines.ts";
import { Executor } from "../executor/executor.ts";
import type { DataFolders } from "../storage/data-folders.ts";
import { validateWorkflow } from "../workflow/validate-workflow.ts";
import { formatProblem, type WorkflowProblem } from "../workflow/workflow-problem.ts";
import { BatchInputFiles } from "./batch-input-files.ts";
import { BatchProgressView } from "./batch-progress-view.ts";
import type { CliIo } from "./cli-io.ts";

/** Entries one batch folder may hold: past this, listing alone would take a while and the batch days. */
const MAX_FOLDER_ENTRIES = 100_000;
/** The executor's output cache for a batch (the default is 1 GiB). */
const BATCH_CACHE_BYTES = 256 * 1024 ** 2;

export interface BatchRunOptions {
  readonly io: CliIo;
  /** The workflow file, for messages. */
  readonly name: string;
  /** The workflow with --set applied. */
  readonly workflow: unknown;
  /** The --batch values: NODE.INPUT=DIR. */
  readonly specs: readonly string[];
  readonly json: boolean;
  readonly folders: DataFolders;
  readonly registry: NodeRegistry;
  /** Called once every check has passed: no model is set up for a batch that cannot start. */
  readonly createEngines: () => Promise<Engines>;
  readonly signal: AbortSignal;
}

type ItemStatus = "success" | "error" | "unmatched" | "interrupted" | "not run";

interface ItemReport {
  readonly name: string;
  readonly status: ItemStatus;
  readonly inputs: Readonly<Record<string, string>>;
  readonly files: readonly string[];
  /** Node ids that ran for this picture, and those that came from the cache (the batch's earlier pictures). */
  readonly executed?: readonly string[];
  readonly cached?: readonly string[];
  /** Wall time of this picture's run. */
  readonly seconds?: number;
  readonly error?: string;
}

export async function runBatch(options: BatchRunOptions): Promise<number> {
  const { io, registry } = options;
  const fail = (message: string) => {
    io.stderr.write(`maskflow run: ${message}\n`);
    return 2;
  };

  // 1. What feeds what, and the folders' pictures paired.
  const targets: BatchTarget[] = [];
  const folders: { target: BatchTarget; dir: string }[] = [];
  for (const spec of options.specs) {
    const at = spec.indexOf("=");
    if (at < 0 || at === spec.length - 1) return fail(`--batch "${spec}" must look like NODE.INPUT=FOLDER, e.g. --batch 1.image=photos`);
    let target: BatchTarget;
    try {
      target = parseTargetKey(spec.slice(0, at), "--batch");
    } catch (error) {
      return fail((error as Error).message);
    }
    targets.push(target);
    folders.push({ target, dir: spec.slice(at + 1) });
  }
  const targetProblems = batchTargetProblems(targets, options.workflow, registry, "--batch");
  if (targetProblems.length) return fail(targetProblems.join("\n  "));
  const listed = [];
  for (const { target, dir } of folders) {
    try {
      const listing = await listFolderPictures(path.resolve(dir), { label: dir, maxEntries: MAX_FOLDER_ENTRIES });
      if (listing.skipped.length) {
        const shown = listing.skipped.slice(0, 5).join(", ") + (listing.skipped.length > 5 ? `, … (${listing.skipped.length} in all)` : "");
        io.stderr.write(`maskflow run: skipped in ${dir} what is not a picture by its extension: ${shown}\n`);
      }
      listed.push({ key: target.key, label: dir, pictures: listing.pictures });
    } catch (error) {
      if (error instanceof BatchFolderError) return fail(`--batch ${target.key}: ${error.message}`);
      throw error;
    }
  }
  const { items, unmatched } = pairByStem(listed);
  if (!items.length && !unmatched.length) {
    return fail(`no pictures in ${folders.map((f) => f.dir).join(" or ")} (a picture ends in .png, .jpg, .jpeg, .webp, .tif, .tiff, .gif or .avif)`);
  }

  // 2. The workflow's own problems (those of no batched input) are the same for every picture: checked once.
  const storage = new BatchInputFiles(options.folders, items.flatMap((item) => Object.values(item.files).map((file) => file.path)));
  const isTarget = (problem: WorkflowProblem) => targets.some((t) => t.nodeId === problem.nodeId && t.input === problem.input);
  const itemWorkflow = (item: (typeof items)[number]) =>
    workflowForItem(
      options.workflow,
      targets,
      { stem: item.stem, files: Object.fromEntries(Object.entries(item.files).map(([key, file]) => [key, file.path])) },
      registry,
    );
  if (items.length) {
    const first = validateWorkflow(itemWorkflow(items[0]), registry, { requireOutputNode: true, files: storage });
    const general = first.ok ? [] : first.problems.filter((problem) => !isTarget(problem));
    if (general.length) {
      io.stderr.write(`${options.name}: ${general.length} problem(s)\n`);
      for (const problem of general) io.stderr.write(`  - ${formatProblem(problem)}\n`);
      return 2;
    }
  }

  // 3. The pictures, one after the other, through one executor.
  const types = new Map(((options.workflow as { nodes: { id: string; type: string }[] }).nodes ?? []).map((node) => [node.id, node.type]));
  const view = new BatchProgressView(io, items.length + unmatched.length, types);
  const reports: ItemReport[] = [];
  const report = (item: ItemReport, line: string) => {
    reports.push(item);
    view.finishItem(`${item.name}: ${line}`);
  };
  for (const { stem, reason } of unmatched) report({ name: stem, status: "unmatched", inputs: {}, files: [], error: reason }, `unmatched: ${reason}`);

  const engines = items.length ? await options.createEngines() : undefined;
  try {
    // What every picture shares (prompt, scheduler, a fixed picture) is used again by each and so stays at the
    // recent end of the cache; each picture's own outputs are never asked for again. A quarter of the usual
    // bound keeps a long batch from holding a gigabyte of them.
    const executor = engines && new Executor({ registry, storage, engines: engines.nodeEngines, cacheBytes: BATCH_CACHE_BYTES });
    for (const [index, item] of items.entries()) {
      const inputs = Object.fromEntries(Object.entries(item.files).map(([key, file]) => [key, file.path]));
      if (options.signal.aborted) {
        reports.push({ name: item.stem, status: "not run", inputs, files: [] });
        continue;
      }
      view.startItem(item.stem);
      const validation = validateWorkflow(itemWorkflow(item), registry, { requireOutputNode: true, files: storage });
      if (!validation.ok) {
        report({ name: item.stem, status: "error", inputs, files: [], error: validation.problems.map(formatProblem).join("; ") }, `failed: ${validation.problems.map(formatProblem).join("; ")}`);
        continue;
      }
      const started = performance.now();
      const result = await executor!.run(validation.workflow, { jobId: `cli-batch-${index + 1}`, signal: options.signal, onEvent: (event) => view.onEvent(event) });
      const files = Object.values(result.outputs).flatMap((record) =>
        record.images.filter((image) => image.type === "output").map((image) => path.join(options.folders.folder(image.type), image.subfolder, image.filename)),
      );
      if (!options.json) for (const file of files) io.stdout.write(`${file}\n`);
      const seconds = Math.round(performance.now() - started) / 1000;
      const ran = { executed: result.executed, cached: result.cached, seconds };
      if (result.status === "success") {
        report({ name: item.stem, status: "success", inputs, files, ...ran }, `done in ${seconds.toFixed(1)} s${files.length ? ` → ${files.map((f) => path.basename(f)).join(", ")}` : ""}`);
      } else if (result.status === "interrupted") {
        report({ name: item.stem, status: "interrupted", inputs, files, ...ran, error: "interrupted" }, "interrupted");
      } else {
        const where = result.error?.node ? `node ${result.error.node} (${result.error.nodeType}): ` : "";
        const message = `${where}${result.error?.message}`;
        report({ name: item.stem, status: "error", inputs, files, ...ran, error: message }, `failed at ${message}`);
      }
    }
  } finally {
    view.stop();
    await engines?.dispose();
  }

  // 4. The summary: counts, each failure and why, and an exit code a script can test.
  const count = (status: ItemStatus) => reports.filter((item) => item.status === status).length;
  const done = count("success");
  const failed = count("error") + count("unmatched");
  const stopped = count("interrupted") + count("not run");
  const interrupted = options.signal.aborted;
  const unmatchedCount = count("unmatched");
  const parts = [`${done} done`, `${failed} failed${unmatchedCount ? ` (${unmatchedCount} unmatched)` : ""}`, ...(stopped ? [`${stopped} not run (interrupted)`] : [])];
  io.stderr.write(`maskflow run: batch of ${reports.length} picture${reports.length === 1 ? "" : "s"}: ${parts.join(", ")}\n`);
  for (const item of reports) {
    if (item.status === "error" || item.status === "unmatched") io.stderr.write(`  - ${item.name}: ${item.error}\n`);
  }
  if (options.json) {
    const status = interrupted ? "interrupted" : failed ? "error" : "success";
    io.stdout.write(JSON.stringify({ status, done, failed, notRun: stopped, items: reports }) + "\n");
  }
  return interrupted ? 130 : failed ? 1 : 0;
}
