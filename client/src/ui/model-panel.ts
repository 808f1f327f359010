/**
 * The model download panel: what Download model would fetch (name, size, folder, asked of the hub first) and,
 * for a checkpoint (the default model), that Maskflow builds its ONNX graphs from it after the download; then the
 * pull's progress as the server reports it (bytes, speed, time left; then the build's phase and part), cancel and
 * resume, and what to do when it fails. The server holds the pull, so a reloaded page shows it again where it is.
 */
import { formatBytes } from "../../../server/models/format-bytes.ts";
import { api, ApiError, type ModelPullPreview, type ModelPullStatus } from "../api/maskflow-api.ts";

export interface ModelPanelActions {
  /** A pull finished: the server's engine has the model now. */
  pulled(status: ModelPullStatus): void;
}

const RUNNING = new Set<ModelPullStatus["state"]>(["planning", "downloading", "building"]);

export class ModelPanel {
  #status: ModelPullStatus | null = null;
  #preview: ModelPullPreview | undefined;
  #previewError: string | undefined;
  #busy = false;

  constructor(
    readonly element: HTMLElement,
    readonly actions: ModelPanelActions,
  ) {
    element.addEventListener("click", (event) => void this.#click(event));
  }

  get running(): boolean {
    return this.#status !== null && RUNNING.has(this.#status.state);
  }

  /** Opens the panel on the offer (or on the pull under way), asking the hub what a download would take. */
  async open(): Promise<void> {
    this.element.hidden = false;
    if (this.running) return this.#render();
    this.#preview = undefined;
    this.#previewError = undefined;
    this.#render();
    try {
      this.#preview = await api.previewModelPull();
    } catch (error) {
      this.#previewError = (error as Error).message;
    }
    this.#render();
  }

  close(): void {
    this.element.hidden = true;
  }

  /** The server's word on the pull (a `model_pull` event, or GET /api/models after a reload). */
  update(status: ModelPullStatus | null): void {
    const previous = this.#status;
    // The answer to POST can arrive after the first events of the pull it started: never step back.
    if (status && previous?.id === status.id && stage(status) < stage(previous)) return;
    this.#status = status;
    if (!status) return;
    // A pull under way shows itself, whoever started it (another tab, the API).
    if (RUNNING.has(status.state)) this.element.hidden = false;
    if (status.state === "done" && previous && previous.id === status.id && previous.state !== "done") this.actions.pulled(status);
    this.#render();
  }

  async #click(event: MouseEvent): Promise<void> {
    const action = (event.target as HTMLElement).closest<HTMLElement>("[data-do]")?.dataset.do;
    if (!action || this.#busy) return;
    if (action === "close") return this.close();
    this.#busy = true;
    try {
      if (action === "start") this.update((await api.startModelPull()).pull);
      if (action === "cancel") this.update((await api.cancelModelPull()).pull);
    } catch (error) {
      // The server said why (hub away, token, disk): keep it on the panel, where the button was.
      this.#previewError = error instanceof ApiError ? error.message : `Could not reach the server: ${(error as Error).message}`;
      if (action === "start" && this.#status && RUNNING.has(this.#status.state)) this.#status = null;
    } finally {
      this.#busy = false;
    }
    this.#render();
  }

  #render(): void {
    const status = this.#status;
    const body = document.createElement("div");
    body.className = "mf-model-body";
    const line = (text: string, className = "") => {
      const p = document.createElement("p");
      p.textContent = text;
      if (className) p.className = className;
      body.append(p);
      return p;
    };
    const button = (label: string, action: string, primary = false) => {
      const b = document.createElement("button");
      b.textContent = label;
      b.dataset.do = action;
      if (primary) b.className = "mf-primary";
      return b;
    };
    const buttons = document.createElement("div");
    buttons.className = "mf-model-buttons";

    if (status && RUNNING.has(status.state)) {
      line(`${status.repo} → ${status.modelDir}`, "mf-model-where");
      const bar = document.createElement("progress");
      const building = status.state === "building" && status.build;
      bar.max = building ? Math.max(1, status.build!.total) : Math.max(1, status.totalBytes);
      bar.value = building ? status.build!.done : status.bytes;
      body.append(bar);
      line(progressText(status), "mf-pull-status");
      if (status.state === "building") line(`Downloaded and verified (${formatBytes(status.totalBytes)} in ${status.fileCount} files, kept in ${status.downloadDir}); Maskflow builds its ONNX graphs from them.`, "mf-model-file");
      else if (status.file) line(`${status.file} (file ${Math.min(status.filesDone + 1, status.fileCount)} of ${status.fileCount})`, "mf-model-file");
      else if (status.builds) line("Maskflow builds its ONNX graphs from these files once they are downloaded.", "mf-model-file");
      buttons.append(button("Cancel", "cancel"));
    } else if (status?.state === "done") {
      line(`Model ready: ${status.name} (${formatBytes(status.totalBytes)}${status.builds ? " downloaded, built here" : ""}) in ${status.modelDir}. Queue runs on it now.`, "mf-pull-status mf-model-ok");
    } else {
      if (status?.state === "failed") line(`${status.errorCode === "build_failed" ? "Build" : "Download"} failed: ${status.error ?? "unknown error"}`, "mf-pull-status mf-model-error");
      if (status?.state === "cancelled") {
        line(
          status.build
            ? "Cancelled while building: nothing half-built was kept; the downloads are, and Download builds from them again."
            : `Cancelled at ${formatBytes(status.bytes)} of ${formatBytes(status.totalBytes)}: what was fetched is kept, Download resumes it.`,
          "mf-pull-status",
        );
      }
      const preview = this.#preview;
      if (preview) {
        line(`${preview.repo} (${revisionText(preview)}): ${formatBytes(preview.totalBytes)} in ${preview.fileCount} files`, "mf-model-size");
        if (preview.builds) {
          line(`${describeCheckpointFiles(preview.files)}. Maskflow then builds its ONNX graphs from them, on this server.`, "mf-model-build");
        }
        line(`Into ${preview.modelDir}${preview.downloadDir ? ` (the downloaded files are kept in ${preview.downloadDir})` : ""}`, "mf-model-where");
        const already = preview.totalBytes - preview.neededBytes;
        const toBuild = preview.buildBytes > 0 ? ` and about ${formatBytes(preview.buildBytes)} to build` : "";
        line(`${already > 0 ? `${formatBytes(already)} already here, ` : ""}${formatBytes(preview.neededBytes)} to fetch${toBuild}, ${formatBytes(preview.freeBytes)} free on that disk`);
      } else if (!this.#previewError) {
        line("Asking the model hub for the size…");
      }
      if (this.#previewError) line(this.#previewError, "mf-model-error");
      buttons.append(button(status?.state === "cancelled" ? "Resume download" : status?.state === "failed" ? "Try again" : "Download model", "start", true));
    }
    buttons.append(button("Close", "close"));
    body.append(buttons);
    this.element.querySelector(".mf-model-body")?.replaceWith(body);
  }
}

function stage(status: ModelPullStatus): number {
  return status.state === "planning" ? 0 : status.state === "downloading" ? 1 : status.state === "building" ? 2 : 3;
}

/** "main", or "commit 8a4288a76071" for a pinned commit. */
function revisionText(preview: ModelPullPreview): string {
  return /^[0-9a-f]{40}$/.test(preview.revision) ? `commit ${preview.revision.slice(0, 12)}` : preview.revision;
}

/** "unet, vae and text_encoder weights (fp16 safetensors), with their configs, the tokenizer and the scheduler's config" */
export function describeCheckpointFiles(files: readonly string[]): string {
  const weights = files.filter((file) => file.endsWith(".safetensors"));
  const parts = weights.map((file) => file.split("/")[0]);
  const named = parts.length > 1 ? `${parts.slice(0, -1).join(", ")} and ${parts.at(-1)}` : parts.join("");
  const fp16 = weights.filter((file) => file.endsWith(".fp16.safetensors")).length;
  const precision = fp16 === weights.length ? "fp16" : fp16 === 0 ? "fp32" : "fp16 and fp32";
  const extras = [
    files.some((file) => file.endsWith("/config.json")) ? "their configs" : "",
    files.some((file) => file.startsWith("tokenizer/")) ? "the tokenizer" : "",
    files.includes("scheduler/scheduler_config.json") ? "the scheduler's config" : "",
  ].filter(Boolean);
  const withExtras = extras.length > 1 ? `${extras.slice(0, -1).join(", ")} and ${extras.at(-1)}` : extras.join("");
  return `The ${named} weights (${precision} safetensors)${withExtras ? `, with ${withExtras}` : ""}`;
}

/** "1.20 MB of 3.51 MB (34%) · 2.10 MB/s · 2 s left"; while building, "Building the model: building unet 12 %" */
export function progressText(status: ModelPullStatus): string {
  if (status.state === "planning") return "Checking the hub and what is already on disk…";
  if (status.state === "building") return `Building the model: ${status.build?.label ?? "starting the build"}`;
  const percent = status.totalBytes ? Math.floor((status.bytes / status.totalBytes) * 100) : 0;
  const parts = [`${formatBytes(status.bytes)} of ${formatBytes(status.totalBytes)} (${percent}%)`];
  if (status.bytesPerSecond > 0) parts.push(`${formatBytes(status.bytesPerSecond)}/s`);
  if (status.secondsLeft !== null) parts.push(`${formatDuration(status.secondsLeft)} left`);
  return parts.join(" · ");
}

function formatDuration(seconds: number): string {
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  if (seconds < 3600) return `${Math.ceil(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h ${Math.ceil((seconds % 3600) / 60)} min`;
}
