import { copyFile, link, mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { SingleBar } from "cli-progress";
import { DEFAULT_MODEL_REPO, DEFAULT_MODEL_REVISION } from "../models/default-model.ts";
import { type HelperModel, HELPER_MODELS, LORA_DOWNLOADS } from "../models/helper-model-catalog.ts";
import { LORAS_FOLDER } from "../models/model-names.ts";
import { planHelperPull } from "../models/helper-model-pull.ts";
import { HubClient } from "../models/hub-client.ts";
import { describeModelSource, formatBytes, listModels, verifyModel } from "../models/inspect-models.ts";
import { isSafeModelName, modelNameFromRepo, resolveModelsDir } from "../models/models-folder.ts";
import { checkpointDownloadDir, pullCheckpoint } from "../models/pull-checkpoint.ts";
import { type PullEvent, planPull, pullModel } from "../models/pull-model.ts";
import type { CliIo } from "./cli-io.ts";
import type { LoraUse } from "../models/checkpoint/model-recipe.ts";
import { parseLoraOption } from "./lora-option.ts";
import { inpaintingMergeMultiplierProblem } from "../models/checkpoint/inpainting-merge.ts";
import { BUILT_MODELS_FOLDER, CHECKPOINT_FILE_PATTERN, buildCheckpoint, type BuildJobProgress, describeBuildProgress } from "../models/checkpoint/built-model-cache.ts";

const USAGE = [
  "usage: maskflow models pull [REPO|HELPER|LORA] [--revision REV] [--name NAME] [--models DIR]",
  "       maskflow models import FILE|DIR [--name NAME] [--models DIR] [--lora FILE[:SM[:SC]] ...]",
  "                                  [--inpainting-from INPAINTING --base BASE [--multiplier M]]",
  "       maskflow models list [--models DIR]",
  "       maskflow models verify [NAME|DIR] [--models DIR]",
  "",
  "pull with no REPO fetches the SD 1.5 inpainting weights as published, a diffusers folder:",
  `  ${DEFAULT_MODEL_REPO} at commit ${DEFAULT_MODEL_REVISION},`,
  "  the fp16 safetensors of the UNet, VAE and text encoder where published (else fp32), their configs, the tokenizer",
  "  and the scheduler config (no safety checker, no .bin or .ckpt), each verified against the size and sha256 the hub",
  "  lists at that commit, into DIR/.downloads/sd15-inpainting; then BUILDS Maskflow's ONNX graphs from them into",
  "  DIR/sd15-inpainting, where the engine looks. A pull run again verifies the downloads, fetches nothing and finds",
  "  the build made. A REPO that is a diffusers checkpoint folder (unet/*.safetensors, no unet/model.onnx) is pulled",
  "  and built the same way into DIR/.downloads/NAME and DIR/NAME; a REPO that is an ONNX export is downloaded as it",
  "  is into DIR/NAME (NAME defaults to the repository's name; REV to main).",
  `HELPER is a helper model Maskflow knows, pulled into DIR/HELPER with its checksums checked: ${HELPER_MODELS.map((m) => `${m.name} (${m.repo})`).join(", ")}.`,
  `A LoRA Maskflow knows is pulled into DIR/loras/ with its checksum checked: ${LORA_DOWNLOADS.map((m) => `${m.name} (${m.repo} → loras/${m.loraFile})`).join(", ")}.`,
  "import builds Maskflow's ONNX graphs from an SD 1.x checkpoint (a .safetensors or .ckpt single file, or a",
  "diffusers folder) into DIR/NAME, in TypeScript, with no Python; NAME defaults to the file's name. --lora merges",
  "LoRAs into the weights (strengths on the UNet and the text encoder, −4 to 4, default 1). --inpainting-from and",
  "--base make an inpainting model of a plain checkpoint: INPAINTING + (FILE − BASE) × M (\"add difference\").",
  "list judges each folder by its files and sizes; verify also opens its sessions and re-hashes a pulled model.",
  "",
  "DIR defaults to $MASKFLOW_MODELS_DIR or ./models. HF_ENDPOINT and HF_TOKEN are honoured as in huggingface_hub.",
].join("\n");

/** What the command reads from its surroundings; tests pass their own instead of touching process.env. */
export interface ModelsCommandContext {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Backoff base for retries (tests make it tiny). */
  readonly retryDelayMs?: number;
  readonly maxAttempts?: number;
  /** The helper models `pull NAME` knows; tests pass entries describing the miniatures a fake hub serves. */
  readonly helperModels?: readonly HelperModel[];
  /** The LoRAs `pull NAME` knows (lcm-lora); tests pass entries for the miniatures a fake hub serves. */
  readonly loraDownloads?: readonly HelperModel[];
}

export async function modelsCommand(args: string[], io: CliIo, context: ModelsCommandContext = {}): Promise<number> {
  const [sub, ...rest] = args;
  const env = context.env ?? process.env;
  const cwd = context.cwd ?? process.cwd();
  if (sub === "pull") return pull(rest, io, env, cwd, context);
  if (sub === "list") return list(rest, io, env, cwd);
  if (sub === "import") return importCheckpoint(rest, io, env, cwd);
  if (sub === "verify") return verify(rest, io, env, cwd);
  io.stderr.write(USAGE + "\n");
  return sub === "--help" || sub === "-h" ? 0 : 2;
}

async function pull(args: string[], io: CliIo, env: NodeJS.ProcessEnv, cwd: string, context: ModelsCommandContext): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { revision: { type: "string" }, name: { type: "string" }, models: { type: "string" } },
  });
  if (positionals.length > 1) {
    io.stderr.write(USAGE + "\n");
    return 2;
  }
  const lora = (context.loraDownloads ?? LORA_DOWNLOADS).find((model) => model.name === positionals[0]);
  if (lora) return pullLora(lora, values, io, env, cwd, context);
  const helper = (context.helperModels ?? HELPER_MODELS).find((model) => model.name === positionals[0]);
  const repo = helper?.repo ?? positionals[0] ?? DEFAULT_MODEL_REPO;
  const revision = values.revision ?? helper?.revision ?? (positionals[0] ? "main" : DEFAULT_MODEL_REVISION);
  // The default repository lands where the engine looks by default (models/sd15-inpainting), and a helper model
  // where its nodes look (models/NAME), so `maskflow models pull && maskflow serve` works with no flags.
  const name = values.name ?? helper?.name ?? (positionals[0] ? modelNameFromRepo(repo) : "sd15-inpainting");
  if (!isSafeModelName(name)) {
    io.stderr.write(`maskflow models pull: invalid --name "${name}" (letters, digits, . _ - only)\n`);
    return 2;
  }
  const modelDir = path.join(resolveModelsDir(values.models, env, cwd), name);
  const progress = createPullProgress(io);
  const client = HubClient.fromEnv(env, {
    maxAttempts: context.maxAttempts,
    retryDelayMs: context.retryDelayMs,
    onRetry: ({ what, attempt, delayMs, reason }) => {
      progress.interrupt(`${what}: ${reason}; retry ${attempt} in ${(delayMs / 1000).toFixed(1)} s\n`);
    },
  });
  io.stderr.write(`pulling ${repo}@${revision} from ${client.endpoint} into ${modelDir}\n`);
  const abort = new AbortController();
  const onSigint = () => abort.abort(new Error("interrupted"));
  process.once("SIGINT", onSigint);
  const build = createBuildProgress(io);
  let building = false;
  try {
    const plan = helper ? await planHelperPull(client, helper, revision) : await planPull(client, repo, revision);
    if (!plan.build) {
      const result = await pullModel({ client, repo, revision, modelDir, plan, onEvent: progress.onEvent, signal: abort.signal });
      progress.stop();
      io.stdout.write(`${modelDir}: ${describePulledFiles(result)}\n`);
      return 0;
    }
    const downloadDir = checkpointDownloadDir(modelDir);
    io.stderr.write(`a diffusers checkpoint: its files go to ${downloadDir}, then Maskflow's ONNX graphs are built from them into ${modelDir}\n`);
    let buildStartedAt = 0;
    const result = await pullCheckpoint({
      client,
      repo,
      revision,
      modelDir,
      plan,
      onEvent: progress.onEvent,
      signal: abort.signal,
      onBuildStart: () => {
        progress.stop();
        building = true;
        buildStartedAt = Date.now();
        io.stderr.write(`downloads verified; building Maskflow's ONNX graphs from ${downloadDir}\n`);
      },
      onBuildProgress: build.update,
    });
    build.stop();
    io.stdout.write(`${downloadDir}: ${describePulledFiles(result.pull)}\n`);
    if (!result.build.built) {
      io.stdout.write(`${modelDir}: already built from these files (key ${result.build.key})\n`);
    } else {
      const summary = result.build.summary;
      const kind = summary ? `: ${summary.inpainting ? "inpainting (9-channel UNet)" : "plain (4-channel UNet, run as legacy inpainting)"}, ${summary.floatTypes.join("+")} weights → fp32 graphs` : "";
      io.stdout.write(`${modelDir}: built in ${((Date.now() - buildStartedAt) / 1000).toFixed(1)} s${kind}\n`);
    }
    return 0;
  } catch (error) {
    progress.stop();
    build.stop();
    const message = error instanceof Error ? error.message : String(error);
    const interrupted = building
      ? "interrupted while building: nothing half-built was kept, the downloads are; re-run to build"
      : "interrupted; re-run to resume";
    io.stderr.write(`maskflow models pull: ${abort.signal.aborted ? interrupted : building ? `the build failed: ${message}` : message}\n`);
    return abort.signal.aborted ? 130 : 1;
  } finally {
    process.off("SIGINT", onSigint);
  }
}

/** "12 files, 2.13 GB (2.13 GB downloaded), commit …" */
function describePulledFiles(result: { files: ReadonlyArray<{ size: number }>; downloadedBytes: number; commit: string | null }): string {
  const total = result.files.reduce((sum, file) => sum + file.size, 0);
  return `${result.files.length} files, ${formatBytes(total)} (${formatBytes(result.downloadedBytes)} downloaded)${result.commit ? `, commit ${result.commit}` : ""}`;
}

/**
 * A LoRA from the catalog (lcm-lora): its file is fetched and checked like a helper model's into the models folder's
 * .downloads/NAME (resumable), then linked into loras/ under the name Load LoRA and the shipped workflows use.
 */
async function pullLora(
  lora: HelperModel,
  values: { revision?: string; models?: string },
  io: CliIo,
  env: NodeJS.ProcessEnv,
  cwd: string,
  context: ModelsCommandContext,
): Promise<number> {
  const modelsDir = resolveModelsDir(values.models, env, cwd);
  const downloadDir = checkpointDownloadDir(path.join(modelsDir, lora.name));
  const target = path.join(modelsDir, LORAS_FOLDER, lora.loraFile ?? `${lora.name}.safetensors`);
  const progress = createPullProgress(io);
  const client = HubClient.fromEnv(env, {
    maxAttempts: context.maxAttempts,
    retryDelayMs: context.retryDelayMs,
    onRetry: ({ what, attempt, delayMs, reason }) => progress.interrupt(`${what}: ${reason}; retry ${attempt} in ${(delayMs / 1000).toFixed(1)} s\n`),
  });
  const revision = values.revision ?? lora.revision;
  io.stderr.write(`pulling ${lora.repo}@${revision} from ${client.endpoint} into ${target}\n`);
  const abort = new AbortController();
  const onSigint = () => abort.abort(new Error("interrupted"));
  process.once("SIGINT", onSigint);
  try {
    const plan = await planHelperPull(client, lora, revision);
    await pullModel({ client, repo: lora.repo, revision, modelDir: downloadDir, plan, onEvent: progress.onEvent, signal: abort.signal });
    progress.stop();
    await mkdir(path.dirname(target), { recursive: true });
    await rm(target, { force: true });
    await link(path.join(downloadDir, lora.files[0].path), target).catch(() => copyFile(path.join(downloadDir, lora.files[0].path), target));
    io.stdout.write(`${target}: ${lora.title}, ${formatBytes(lora.files[0].size)}, sha256 ${lora.files[0].sha256}\n`);
    return 0;
  } catch (error) {
    progress.stop();
    const message = error instanceof Error ? error.message : String(error);
    io.stderr.write(`maskflow models pull: ${abort.signal.aborted ? "interrupted; re-run to resume" : message}\n`);
    return abort.signal.aborted ? 130 : 1;
  } finally {
    process.off("SIGINT", onSigint);
  }
}

async function importCheckpoint(args: string[], io: CliIo, env: NodeJS.ProcessEnv, cwd: string): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      name: { type: "string" },
      models: { type: "string" },
      lora: { type: "string", multiple: true, default: [] },
      "inpainting-from": { type: "string" },
      base: { type: "string" },
      multiplier: { type: "string" },
    },
  });
  if (positionals.length !== 1) {
    io.stderr.write(USAGE + "\n");
    return 2;
  }
  const source = path.resolve(cwd, positionals[0]);
  const name = values.name ?? path.basename(source).replace(CHECKPOINT_FILE_PATTERN, "").replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "");
  if (!isSafeModelName(name)) {
    io.stderr.write(`maskflow models import: invalid --name "${name}" (letters, digits, . _ - only)\n`);
    return 2;
  }
  const inpaintingFrom = values["inpainting-from"];
  if ((inpaintingFrom === undefined) !== (values.base === undefined) || (values.multiplier !== undefined && inpaintingFrom === undefined)) {
    io.stderr.write("maskflow models import: --inpainting-from INPAINTING and --base BASE go together (with --multiplier M, default 1)\n");
    return 2;
  }
  const multiplier = values.multiplier === undefined ? 1 : Number(values.multiplier);
  const multiplierProblem = values.multiplier !== undefined && values.multiplier.trim() === "" ? "the merge multiplier must be a number" : inpaintingMergeMultiplierProblem(multiplier);
  if (multiplierProblem) {
    io.stderr.write(`maskflow models import: --multiplier: ${multiplierProblem}\n`);
    return 2;
  }
  let loras: LoraUse[];
  try {
    loras = await Promise.all((values.lora ?? []).map((value) => parseLoraOption(value, cwd)));
  } catch (error) {
    io.stderr.write(`maskflow models import: ${(error as Error).message}\n`);
    return 2;
  }
  const merge = inpaintingFrom && values.base ? { inpainting: path.resolve(cwd, inpaintingFrom), base: path.resolve(cwd, values.base), multiplier } : undefined;
  const modelsDir = resolveModelsDir(values.models, env, cwd);
  const target = path.join(modelsDir, name);
  io.stderr.write(`importing ${source} into ${target}\n`);
  const progress = createBuildProgress(io);
  const abort = new AbortController();
  const onSigint = () => abort.abort(new Error("interrupted"));
  process.once("SIGINT", onSigint);
  const started = Date.now();
  try {
    const result = await buildCheckpoint(
      { source, cacheRoot: path.join(modelsDir, BUILT_MODELS_FOLDER), target, loras, merge },
      { onProgress: progress.update, signal: abort.signal },
    );
    progress.stop();
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (!result.built) {
      io.stdout.write(`${target}: already built from this checkpoint (key ${result.key})\n`);
    } else {
      const summary = result.summary;
      const kind = summary ? `${summary.inpainting ? "inpainting (9-channel UNet)" : "plain (4-channel UNet, run as legacy inpainting)"}, ${summary.layout}, ${summary.floatTypes.join("+")} weights → fp32 graphs` : "";
      io.stdout.write(`${target}: built in ${seconds} s${kind ? `: ${kind}` : ""}\n`);
    }
    return 0;
  } catch (error) {
    progress.stop();
    const message = error instanceof Error ? error.message : String(error);
    io.stderr.write(`maskflow models import: ${abort.signal.aborted ? "interrupted; nothing was kept" : message}\n`);
    return abort.signal.aborted ? 130 : 1;
  } finally {
    process.off("SIGINT", onSigint);
  }
}

/** A bar on a terminal; otherwise a line per phase and every few seconds (logs, CI). */
function createBuildProgress(io: CliIo): { update: (progress: BuildJobProgress) => void; stop: () => void } {
  const tty = Boolean(io.stderr.isTTY);
  let bar: SingleBar | undefined;
  let phase = "";
  let lastLine = 0;
  return {
    update(progress) {
      const label = progress.phase === "reading" ? "reading checkpoint" : `building ${progress.part}`;
      if (tty) {
        if (!bar) {
          bar = new SingleBar({ format: "[{bar}] {percentage}% {label}", stream: io.stderr, hideCursor: true });
          bar.start(100, 0, { label });
        }
        bar.update(progress.total > 0 ? Math.floor((100 * progress.done) / progress.total) : 0, { label });
        return;
      }
      if (label !== phase || Date.now() - lastLine > 5000) {
        phase = label;
        lastLine = Date.now();
        io.stderr.write(`${describeBuildProgress(progress)}\n`);
      }
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}

async function list(args: string[], io: CliIo, env: NodeJS.ProcessEnv, cwd: string): Promise<number> {
  const { values } = parseArgs({ args, options: { models: { type: "string" }, json: { type: "boolean" } } });
  const modelsDir = resolveModelsDir(values.models, env, cwd);
  const models = await listModels(modelsDir);
  if (values.json) {
    io.stdout.write(JSON.stringify(models) + "\n");
    return 0;
  }
  if (!models.length) {
    io.stdout.write(`no models in ${modelsDir}; try \`maskflow models pull\`\n`);
    return 0;
  }
  const width = Math.max(...models.map((m) => m.name.length));
  for (const model of models) {
    const source = describeModelSource(model.kind, model.repo ? { repo: model.repo, revision: model.revision ?? "", commit: model.commit ?? null } : undefined, model.builtFrom);
    const judged = model.problems.length
      ? `${model.problems.length} problem(s)`
      : model.kind === "pulled"
        ? "layout ok, sizes match the manifest"
        : "layout ok";
    io.stdout.write(`${model.name.padEnd(width)}  ${model.status.padEnd(10)}  ${formatBytes(model.bytes).padStart(9)}  ${source}: ${judged}\n`);
    for (const problem of model.problems) io.stdout.write(`  - ${problem.path}: ${problem.detail}\n`);
  }
  io.stdout.write("(list checks the files and their sizes only; `maskflow models verify` re-hashes pulled files and opens the sessions)\n");
  return 0;
}

async function verify(args: string[], io: CliIo, env: NodeJS.ProcessEnv, cwd: string): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { models: { type: "string" } } });
  if (positionals.length > 1) {
    io.stderr.write(USAGE + "\n");
    return 2;
  }
  const modelsDir = resolveModelsDir(values.models, env, cwd);
  const targets = positionals.length
    ? [positionals[0].includes("/") || positionals[0].includes(path.sep) || positionals[0].startsWith(".") ? path.resolve(cwd, positionals[0]) : path.join(modelsDir, positionals[0])]
    : (await listModels(modelsDir)).map((model) => model.modelDir);
  if (!targets.length) {
    io.stderr.write(`no models in ${modelsDir}\n`);
    return 1;
  }
  let failed = false;
  for (const modelDir of targets) {
    const result = await verifyModel(modelDir);
    const source = describeModelSource(result.kind, result.manifest, result.builtFrom);
    if (result.problems.length) {
      failed = true;
      const notOpened = result.sessionsOpened ? "" : "; sessions not opened until the files are fixed";
      io.stderr.write(`${modelDir}: ${result.problems.length} problem(s) (${source}${notOpened})\n`);
      for (const problem of result.problems) io.stderr.write(`  - ${problem.path}: ${problem.detail}\n`);
    } else {
      const checksums = result.checkedFiles ? `checksums ok (${result.checkedFiles} files), ` : "";
      io.stdout.write(`${modelDir}: ok: ${source}: ${checksums}layout ok, sessions open\n`);
    }
  }
  return failed ? 1 : 0;
}

/** A byte progress bar on a terminal; a line per file and every few seconds otherwise (logs, CI). */
function createPullProgress(io: CliIo): { onEvent: (event: PullEvent) => void; interrupt: (line: string) => void; stop: () => void } {
  const tty = Boolean(io.stderr.isTTY);
  let bar: SingleBar | undefined;
  let total = 0;
  let lastLine = 0;
  const stop = () => {
    bar?.stop();
    bar = undefined;
  };
  return {
    stop,
    interrupt(line) {
      if (bar) {
        // cli-progress redraws on the next update; a line written between draws lands above the bar.
        io.stderr.write("\n" + line);
      } else {
        io.stderr.write(line);
      }
    },
    onEvent(event) {
      if (event.type === "plan") {
        total = event.totalBytes;
        io.stderr.write(`${event.files.length} files, ${formatBytes(event.totalBytes)}${event.alreadyPresentBytes ? `, ${formatBytes(event.alreadyPresentBytes)} already here` : ""}\n`);
        if (tty) {
          bar = new SingleBar({
            format: "[{bar}] {percentage}% {done}/{size} {file} eta {eta_formatted}",
            stream: io.stderr,
            hideCursor: true,
            etaBuffer: 50,
          });
          bar.start(total, event.alreadyPresentBytes, { file: "", done: formatBytes(event.alreadyPresentBytes), size: formatBytes(total) });
        }
      } else if (event.type === "file-start") {
        if (!tty) io.stderr.write(`${event.path} (${formatBytes(event.size)})\n`);
      } else if (event.type === "bytes") {
        if (bar) {
          bar.update(event.totalBytes, { file: event.path, done: formatBytes(event.totalBytes), size: formatBytes(total) });
        } else if (Date.now() - lastLine > 5000) {
          lastLine = Date.now();
          io.stderr.write(`  ${event.path}: ${formatBytes(event.fileBytes)}/${formatBytes(event.size)} (total ${formatBytes(event.totalBytes)}/${formatBytes(total)})\n`);
        }
      } else if (event.type === "file-done" && !tty) {
        io.stderr.write(`  ${event.path}: ${event.skipped ? "already present, verified" : "done, verified"}\n`);
      }
    },
  };
}
