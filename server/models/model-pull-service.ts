/**
 * The server's own `maskflow models pull`: one pull at a time, started from the editor or the API, whose
 * state the server keeps (so a reloaded page finds it again) and reports to subscribers a few times a second.
 * The default model is a checkpoint (the diffusers folder of SD 1.5 inpainting at a pinned commit): its files are
 * downloaded into <models>/.downloads/<name>, then built into Maskflow's ONNX graphs in the model folder
 * (pull-checkpoint.ts), and the status goes from downloading to building. An ONNX export named by repository is
 * downloaded into its folder as it is. Cancelling keeps what was fetched: the next pull of the same model resumes
 * it; a build cancelled leaves nothing half-built. A finished pull is handed to the local engine, which uses it
 * from the next job on, without a restart.
 */
import { randomUUID } from "node:crypto";
import path from "node:path";
import { DEFAULT_MODEL_REPO, DEFAULT_MODEL_REVISION } from "./default-model.ts";
import { type BuildJobProgress, describeBuildProgress } from "./checkpoint/built-model-cache.ts";
import { DiskFullError, defaultStatfs, freeBytesAt, requireFreeSpace, type StatFs } from "./disk-space.ts";
import { HubClient } from "./hub-client.ts";
import { FileVerificationError, HubError, HubUnreachableError } from "./hub-errors.ts";
import { listModel, listModels, type ModelListing } from "./inspect-models.ts";
import { modelNameFromRepo } from "./models-folder.ts";
import { PullProgressMeter } from "./pull-progress.ts";
import { checkBuildTarget, checkpointDownloadDir, checkpointSpaceNeeded, ModelFolderTakenError, pullCheckpoint } from "./pull-checkpoint.ts";
import { bytesStillNeeded, type PullEvent, type PullPlan, planPull, pullModel } from "./pull-model.ts";

/** The folder `models pull` fills when no repository is named (models/sd15-inpainting, where the engine looks). */
export const DEFAULT_MODEL_NAME = "sd15-inpainting";

/** building: a checkpoint's files are downloaded and verified, and Maskflow's ONNX graphs are being built from them. */
export type PullState = "planning" | "downloading" | "building" | "done" | "failed" | "cancelled";

/** What the user can do about a failed pull depends on which of these it is; the message says it in words. */
export type PullErrorCode =
  | "hub_unreachable"
  | "hub_denied"
  | "hub_not_found"
  | "hub_error"
  | "disk_full"
  | "checksum_mismatch"
  | "download_failed"
  | "folder_taken"
  | "build_failed";

/** A build's progress as the status carries it: "reading checkpoint 40 %", "building unet 12 %". */
export interface PullBuildProgress {
  readonly phase: BuildJobProgress["phase"];
  /** The graph being written (null while the checkpoint is read). */
  readonly part: string | null;
  readonly done: number;
  readonly total: number;
  readonly label: string;
}

/** The `model_pull` WebSocket event's data, and the `pull` of GET /api/models. */
export interface ModelPullStatus {
  readonly id: string;
  readonly state: PullState;
  readonly repo: string;
  readonly revision: string;
  readonly name: string;
  readonly modelDir: string;
  /** Whether the downloads are a checkpoint built into modelDir after the download (false until the hub answered). */
  readonly builds: boolean;
  /** Where a checkpoint's files are downloaded to (null for an ONNX export, which is downloaded into modelDir). */
  readonly downloadDir: string | null;
  /** The build's progress once state is "building" (kept after it ends; null before, and for an ONNX export). */
  readonly build: PullBuildProgress | null;
  /** The file being fetched (null before the first and after the last). */
  readonly file: string | null;
  readonly filesDone: number;
  readonly fileCount: number;
  /** Bytes of the model on disk and verified or being fetched, out of totalBytes (0 until the hub answered). */
  readonly bytes: number;
  readonly totalBytes: number;
  /** Bytes already there when this pull started (a resumed pull). */
  readonly alreadyPresentBytes: number;
  readonly bytesPerSecond: number;
  /** null while the speed is not known yet, and once the pull ended. */
  readonly secondsLeft: number | null;
  readonly error?: string;
  readonly errorCode?: PullErrorCode;
  readonly startedAt: string;
  readonly finishedAt?: string;
}

/** What the user asked for: any part left out falls back to the default model. */
export interface PullRequest {
  readonly repo?: string;
  readonly revision?: string;
  readonly name?: string;
}

export interface PullTarget {
  readonly repo: string;
  readonly revision: string;
  readonly name: string;
  readonly modelDir: string;
}

/** What the Download button shows before anything is fetched: the hub's sizes and the room here. */
export interface PullPreview extends PullTarget {
  readonly commit: string | null;
  /** The files the pull fetches (paths in the repository, model_index.json last), so the editor can say what they are. */
  readonly files: readonly string[];
  readonly fileCount: number;
  readonly totalBytes: number;
  /** What is still to be fetched (less than totalBytes when a previous pull left files or parts). */
  readonly neededBytes: number;
  /** True when the files are a checkpoint that is built into Maskflow's ONNX graphs in modelDir after the download. */
  readonly builds: boolean;
  /** Where a checkpoint's files are kept (null for an ONNX export). */
  readonly downloadDir: string | null;
  /** Bytes the build is expected to write (0 for an ONNX export, and when the model was built from these files already). */
  readonly buildBytes: number;
  readonly freeBytes: number;
}

/** The part of the local engine a pull talks to: where it looks for its model, and switching it to a new one. */
export interface PullableEngine {
  readonly defaultModelDir: string;
  status(): { readonly installed: boolean };
  useDefaultModelDir(dir: string): void;
  release(dir?: string): Promise<void>;
}

export interface ModelPullServiceOptions {
  /** HF_ENDPOINT and HF_TOKEN are read from here, as `maskflow models pull` does. */
  readonly env?: NodeJS.ProcessEnv;
  /** Where named models go (models/<name>); the default model goes where the engine looks for it. */
  readonly modelsDir: string;
  readonly engine?: PullableEngine;
  readonly defaultRepo?: string;
  readonly defaultRevision?: string;
  readonly statfs?: StatFs;
  readonly maxAttempts?: number;
  readonly retryDelayMs?: number;
  readonly idleTimeoutMs?: number;
  /** Clock and report interval of the progress (four reports a second by default). */
  readonly now?: () => number;
  readonly progressIntervalMs?: number;
}

/** A pull asked for while another runs. */
export class PullRunningError extends Error {
  constructor(readonly running: ModelPullStatus) {
    super(`a model pull is already running (${running.repo} into ${running.modelDir}); cancel it or wait for it to end`);
    this.name = "PullRunningError";
  }
}

/** A failure of the pull, classified: hub, disk, checksum or transfer. */
export class PullFailedError extends Error {
  constructor(
    readonly code: PullErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "PullFailedError";
  }
}

export type PullListener = (status: ModelPullStatus) => void;

export class ModelPullService {
  readonly modelsDir: string;
  readonly #options: ModelPullServiceOptions;
  readonly #listeners = new Set<PullListener>();
  #status: ModelPullStatus | null = null;
  #abort: AbortController | undefined;
  #running: Promise<void> | undefined;

  constructor(options: ModelPullServiceOptions) {
    this.#options = options;
    this.modelsDir = path.resolve(options.modelsDir);
  }

  /** The latest pull of this server's life (running or ended), or null before the first. */
  get status(): ModelPullStatus | null {
    return this.#status;
  }

  get running(): boolean {
    const state = this.#status?.state;
    return state === "planning" || state === "downloading" || state === "building";
  }

  subscribe(listener: PullListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Repository, revision, folder name and folder a request resolves to. */
  target(request: PullRequest = {}): PullTarget {
    const defaultRepo = this.#options.defaultRepo ?? DEFAULT_MODEL_REPO;
    const repo = request.repo ?? defaultRepo;
    const isDefault = request.repo === undefined || request.repo === defaultRepo;
    const revision = request.revision ?? (isDefault ? (this.#options.defaultRevision ?? DEFAULT_MODEL_REVISION) : "main");
    if (request.name === undefined && isDefault) {
      // Into the folder the engine reads when a node names none, so it stays found after a restart too.
      const modelDir = this.#options.engine?.defaultModelDir ?? path.join(this.modelsDir, DEFAULT_MODEL_NAME);
      return { repo, revision, name: path.basename(modelDir), modelDir };
    }
    const name = request.name ?? modelNameFromRepo(repo);
    return { repo, revision, name, modelDir: path.join(this.modelsDir, name) };
  }

  /** Asks the hub what the pull would fetch, and the disk how much room there is; fetches nothing. */
  async preview(request: PullRequest = {}): Promise<PullPreview> {
    const target = this.target(request);
    const plan = await this.#plan(target).catch((error: unknown) => {
      throw classify(error);
    });
    const space = await spaceNeeded(plan, target.modelDir);
    return {
      ...target,
      commit: plan.commit,
      files: plan.files.map((file) => file.path),
      fileCount: plan.files.length,
      totalBytes: plan.totalBytes,
      neededBytes: space.downloadBytes,
      builds: Boolean(plan.build),
      downloadDir: plan.build ? checkpointDownloadDir(target.modelDir) : null,
      buildBytes: space.buildBytes,
      freeBytes: await freeBytesAt(target.modelDir, this.#options.statfs ?? defaultStatfs),
    };
  }

  /**
   * Starts a pull: answers once the hub has listed the files and the disk has room for them (failing with what
   * to do if not), and goes on in the background, reporting to subscribers.
   */
  async start(request: PullRequest = {}): Promise<ModelPullStatus> {
    if (this.running && this.#status) throw new PullRunningError(this.#status);
    const target = this.target(request);
    const abort = new AbortController();
    this.#abort = abort;
    let settle!: () => void;
    this.#running = new Promise<void>((resolve) => (settle = resolve));
    const meter = new PullProgressMeter({ now: this.#options.now, intervalMs: this.#options.progressIntervalMs });
    this.#set({
      id: randomUUID(),
      state: "planning",
      ...target,
      builds: false,
      downloadDir: null,
      build: null,
      file: null,
      filesDone: 0,
      fileCount: 0,
      bytes: 0,
      totalBytes: 0,
      alreadyPresentBytes: 0,
      bytesPerSecond: 0,
      secondsLeft: null,
      startedAt: new Date().toISOString(),
    });

    const statfs = this.#options.statfs ?? defaultStatfs;
    let plan: PullPlan;
    let client: HubClient;
    try {
      client = this.#client();
      plan = await planPull(client, target.repo, target.revision);
      if (abort.signal.aborted) throw abort.signal.reason;
      // A checkpoint is built into the model folder: refused now, before any download, if something else is there.
      if (plan.build) await checkBuildTarget(target.modelDir);
      const space = await spaceNeeded(plan, target.modelDir);
      await requireFreeSpace(target.modelDir, space.downloadBytes + space.buildBytes, statfs);
      if (abort.signal.aborted) throw abort.signal.reason;
    } catch (error) {
      const failure = this.#end(error, abort);
      settle();
      throw failure;
    }
    const downloadDir = plan.build ? checkpointDownloadDir(target.modelDir) : null;
    this.#set({ ...this.#status!, builds: Boolean(plan.build), downloadDir, fileCount: plan.files.length, totalBytes: plan.totalBytes });

    const onEvent = (event: PullEvent) => {
      const status = this.#status!;
      switch (event.type) {
        case "plan":
          meter.sample(event.alreadyPresentBytes);
          meter.takeReport();
          this.#set({ ...status, state: "downloading", bytes: event.alreadyPresentBytes, alreadyPresentBytes: event.alreadyPresentBytes });
          return;
        case "file-start":
          this.#set({ ...status, file: event.path }, false);
          return;
        case "bytes": {
          meter.sample(event.totalBytes);
          const next = { ...status, bytes: event.totalBytes, bytesPerSecond: Math.round(meter.bytesPerSecond()), secondsLeft: roundedSeconds(meter.secondsLeft(status.totalBytes)) };
          this.#set(next, meter.takeReport());
          return;
        }
        case "file-done":
          this.#set({ ...status, filesDone: status.filesDone + 1 }, false);
          return;
      }
    };
    const common = { client, ...target, plan, signal: abort.signal, idleTimeoutMs: this.#options.idleTimeoutMs, statfs, onEvent };
    const buildMeter = new PullProgressMeter({ now: this.#options.now, intervalMs: this.#options.progressIntervalMs });
    const pulled: Promise<{ modelDir: string }> = plan.build
      ? pullCheckpoint({
          ...common,
          onBuildStart: () => {
            const status = this.#status!;
            const build: PullBuildProgress = { phase: "reading", part: null, done: 0, total: 1, label: "starting the build" };
            this.#set({ ...status, state: "building", file: null, bytes: status.totalBytes, bytesPerSecond: 0, secondsLeft: null, build });
          },
          onBuildProgress: (progress) => {
            const build: PullBuildProgress = {
              phase: progress.phase,
              part: progress.phase === "building" ? progress.part : null,
              done: progress.done,
              total: progress.total,
              label: describeBuildProgress(progress),
            };
            const previous = this.#status!.build;
            // A few reports a second, and each new phase or part at once (the editor shows which graph is written).
            const newPart = previous?.phase !== build.phase || previous.part !== build.part;
            this.#set({ ...this.#status!, build }, buildMeter.takeReport() || newPart);
          },
        })
      : pullModel(common);

    void pulled
      .then(
        async (result) => {
          await this.#installed(result.modelDir);
          const status = this.#status!;
          this.#set({ ...status, state: "done", file: null, bytes: status.totalBytes, bytesPerSecond: 0, secondsLeft: null, finishedAt: new Date().toISOString() });
        },
        (error: unknown) => {
          this.#end(error, abort);
        },
      )
      .finally(() => {
        if (this.#abort === abort) this.#abort = undefined;
        settle();
      });
    return this.#status!;
  }

  /** Stops the running pull; what was fetched stays on disk for the next pull to resume. */
  async cancel(): Promise<ModelPullStatus | null> {
    if (!this.running) return null;
    this.#abort?.abort(new Error("cancelled"));
    await this.#running;
    return this.#status;
  }

  /** The models in the models folder (and the engine's own folder when it lies elsewhere), and the pull. */
  async list(): Promise<{ modelsDir: string; defaultModelDir: string | null; models: ModelListing[]; pull: ModelPullStatus | null }> {
    const models = await listModels(this.modelsDir);
    const engineDir = this.#options.engine?.defaultModelDir;
    if (engineDir && !models.some((model) => model.modelDir === engineDir) && path.dirname(engineDir) !== this.modelsDir) {
      const listing = await listModel(engineDir);
      if (listing.problems.every((problem) => problem.path !== ".")) models.push(listing);
    }
    return { modelsDir: this.modelsDir, defaultModelDir: engineDir ?? null, models, pull: this.#status };
  }

  /** Cancels a running pull and waits for it (server shutdown). */
  async close(): Promise<void> {
    await this.cancel();
    this.#listeners.clear();
  }

  #client(): HubClient {
    return HubClient.fromEnv(this.#options.env ?? process.env, { maxAttempts: this.#options.maxAttempts, retryDelayMs: this.#options.retryDelayMs });
  }

  #plan(target: PullTarget): Promise<PullPlan> {
    return planPull(this.#client(), target.repo, target.revision);
  }

  /** A finished pull: the engine takes it when it has no model of its own, and drops a copy it loaded before. */
  async #installed(modelDir: string): Promise<void> {
    const engine = this.#options.engine;
    if (!engine) return;
    if (path.resolve(engine.defaultModelDir) !== path.resolve(modelDir) && !engine.status().installed) engine.useDefaultModelDir(modelDir);
    await engine.release(modelDir);
  }

  /** Records how a pull ended early and returns the error to throw. */
  #end(error: unknown, abort: AbortController): PullFailedError {
    const status = this.#status!;
    const finishedAt = new Date().toISOString();
    if (abort.signal.aborted) {
      this.#set({ ...status, state: "cancelled", file: null, bytesPerSecond: 0, secondsLeft: null, finishedAt });
      return new PullFailedError(
        "download_failed",
        status.state === "building" ? "the pull was cancelled while building; pull again to build (the downloads are kept)" : "the pull was cancelled; pull again to resume",
      );
    }
    // Everything was downloaded and verified: what failed is the build (the checkpoint, or the disk it writes to).
    const failure = status.state === "building" && !(error instanceof PullFailedError) ? buildFailure(error) : classify(error);
    this.#set({ ...status, state: "failed", file: null, bytesPerSecond: 0, secondsLeft: null, error: failure.message, errorCode: failure.code, finishedAt });
    return failure;
  }

  #set(status: ModelPullStatus, report = true): void {
    this.#status = status;
    if (!report) return;
    for (const listener of this.#listeners) {
      try {
        listener(status);
      } catch {
        // One subscriber failing (a closed socket) must not stop the others or the pull.
      }
    }
  }
}

/** Bytes still to download, and (for a checkpoint) to build, for `modelDir`. */
async function spaceNeeded(plan: PullPlan, modelDir: string): Promise<{ downloadBytes: number; buildBytes: number }> {
  if (plan.build) return checkpointSpaceNeeded(plan, modelDir);
  return { downloadBytes: await bytesStillNeeded(modelDir, plan.files), buildBytes: 0 };
}

function roundedSeconds(seconds: number | null): number | null {
  return seconds === null ? null : Math.round(seconds * 10) / 10;
}

function buildFailure(error: unknown): PullFailedError {
  const message = error instanceof Error ? error.message : String(error);
  return new PullFailedError("build_failed", `building the model from the downloaded checkpoint failed: ${message}. The downloads are kept; pull again to retry the build`);
}

/** Which kind of failure an error of the pull is; the message is the one the pull gave, already phrased for the user. */
export function classify(error: unknown): PullFailedError {
  if (error instanceof PullFailedError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof HubUnreachableError) return new PullFailedError("hub_unreachable", message);
  if (error instanceof DiskFullError) return new PullFailedError("disk_full", message);
  if (error instanceof FileVerificationError) return new PullFailedError("checksum_mismatch", message);
  if (error instanceof ModelFolderTakenError) return new PullFailedError("folder_taken", message);
  if (error instanceof HubError) {
    if (error.status === 401 || error.status === 403) return new PullFailedError("hub_denied", message);
    if (error.status === 404) return new PullFailedError("hub_not_found", message);
    return new PullFailedError("hub_error", message);
  }
  return new PullFailedError("download_failed", message);
}
