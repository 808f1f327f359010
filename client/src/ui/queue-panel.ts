/**
 * The side panel with the queue: the running job (interrupt), pending jobs (cancel) and history
 * (status, time, output thumbnails; load its graph or run it again). The jobs of a batch show as one
 * group with its progress, which opens into a row per picture.
 */
import { api, type HistoryEntry, type JobSummary, viewUrl, type WorkflowDocument } from "../api/maskflow-api.ts";
import { batchGroups, renderBatchGroup } from "./batch-group.ts";
import { escapeHtml } from "./escape-html.ts";
import { openImageViewer } from "./image-viewer.ts";
import { notify } from "./notices.ts";

export interface QueuePanelActions {
  load(workflow: unknown): void;
  rerun(workflow: WorkflowDocument): void;
}

export class QueuePanel {
  #refreshing = false;
  #again = false;
  /** The workflow of each job on show, by job id, for its Load and Re-run buttons. */
  #jobs = new Map<string, unknown>();
  /** Batches the user opened: a refresh redraws the panel and keeps them open. */
  #openBatches = new Set<string>();
  /** The pending job ids of each batch on show, for its Cancel rest button. */
  #batchPending = new Map<string, string[]>();

  constructor(
    readonly element: HTMLElement,
    readonly actions: QueuePanelActions,
  ) {
    element.addEventListener("click", (event) => void this.#click(event));
    // <details> says when it opens or closes: remember it for the next redraw ("toggle" does not bubble).
    element.addEventListener(
      "toggle",
      (event) => {
        const group = event.target as HTMLDetailsElement;
        const id = group.dataset?.batch;
        if (!id) return;
        if (group.open) this.#openBatches.add(id);
        else this.#openBatches.delete(id);
      },
      true,
    );
  }

  toggle(open?: boolean): void {
    this.element.hidden = open === undefined ? !this.element.hidden : !open;
    if (!this.element.hidden) void this.refresh();
  }

  /** Refreshes at most one at a time; a request during a refresh runs once more after it. */
  async refresh(): Promise<void> {
    if (this.element.hidden) return;
    if (this.#refreshing) {
      this.#again = true;
      return;
    }
    this.#refreshing = true;
    try {
      const [queue, history] = await Promise.all([api.queue(), api.history(30)]);
      this.#render(queue.running, queue.pending, history);
    } catch {
      // The connection banner already says the server is away.
    } finally {
      this.#refreshing = false;
      if (this.#again) {
        this.#again = false;
        void this.refresh();
      }
    }
  }

  #render(allRunning: JobSummary[], allPending: JobSummary[], allHistory: HistoryEntry[]): void {
    this.#jobs.clear();
    this.#batchPending.clear();
    const section = (title: string, rows: string) => `<h3>${title}</h3>${rows || '<p class="mf-empty">none</p>'}`;
    const time = (iso: string) => new Date(iso).toLocaleTimeString();
    const groups = batchGroups(allRunning, allPending, allHistory);
    for (const group of groups) {
      this.#batchPending.set(group.id, group.pending.map((job) => job.id));
      for (const job of [...group.running, ...group.pending]) this.#jobs.set(job.id, job.workflow);
      for (const entry of group.finished) this.#jobs.set(entry.id, entry.workflow);
    }
    const running = allRunning.filter((job) => !job.batch);
    const pending = allPending.filter((job) => !job.batch);
    const history = allHistory.filter((entry) => !entry.batch);
    const batchRows = groups.map((group) => renderBatchGroup(group, this.#openBatches.has(group.id))).join("");
    const runningRows = running
      .map((job) => {
        this.#jobs.set(job.id, job.workflow);
        return `<div class="mf-job mf-running" data-job="${job.id}"><span>▶ ${job.id.slice(0, 8)} · ${job.workflow.nodes.length} nodes</span>
          <button data-do="interrupt">Stop</button></div>`;
      })
      .join("");
    const pendingRows = pending
      .map((job, i) => {
        this.#jobs.set(job.id, job.workflow);
        return `<div class="mf-job" data-job="${job.id}"><span>#${i + 1} ${job.id.slice(0, 8)} · ${time(job.createdAt)}</span>
          <button data-do="load">Load</button><button data-do="cancel">Cancel</button></div>`;
      })
      .join("");
    const historyRows = history
      .map((entry) => {
        this.#jobs.set(entry.id, entry.workflow);
        const images = Object.values(entry.outputs ?? {}).flatMap((output) => output.images ?? []);
        const thumbs = images
          .slice(0, 4)
          .map((ref) => `<img src="${viewUrl(ref)}" data-full="${viewUrl(ref)}" alt="" loading="lazy">`)
          .join("");
        const status = entry.status === "success" ? "✓" : entry.status === "error" ? "✗" : "■";
        const error = entry.error ? `<div class="mf-job-error">${escapeHtml(entry.error.message)}</div>` : "";
        return `<div class="mf-job mf-status-${entry.status}" data-job="${entry.id}">
          <span>${status} ${time(entry.finishedAt)} · ${(entry.durationMs / 1000).toFixed(1)} s</span>
          ${entry.workflow ? `<button data-do="load">Load</button><button data-do="rerun">Re-run</button>` : `<span class="mf-job-note" title="${escapeHtml(entry.omitted ?? "")}">workflow not kept</span>`}
          <div class="mf-thumbs">${thumbs}</div>${error}</div>`;
      })
      .join("");
    this.element.querySelector(".mf-queue-body")!.innerHTML =
      (batchRows ? section(`Batches (${groups.length})`, batchRows) : "") +
      section("Running", runningRows) +
      section(`Pending (${pending.length})`, pendingRows) +
      section("History", historyRows);
  }

  async #click(event: Event): Promise<void> {
    const target = event.target as HTMLElement;
    if (target.dataset.close !== undefined) return this.toggle(false);
    if (target.dataset.full) return openImageViewer(target.dataset.full);
    const action = target.dataset.do;
    const id = target.closest<HTMLElement>("[data-job]")?.dataset.job;
    if (!action) return;
    try {
      if (action === "clear") await api.clearQueue();
      else if (action === "cancel-batch") {
        const batch = target.closest<HTMLElement>("[data-batch]")?.dataset.batch;
        const ids = batch ? (this.#batchPending.get(batch) ?? []) : [];
        if (ids.length) await api.cancel(ids);
      }
      else if (!id) return;
      else if (action === "interrupt") await api.interrupt(id);
      else if (action === "cancel") await api.cancel([id]);
      else if (action === "load") this.actions.load(this.#jobs.get(id));
      else if (action === "rerun") this.actions.rerun(this.#jobs.get(id) as WorkflowDocument);
    } catch (error) {
      notify((error as Error).message, "error");
    }
    void this.refresh();
  }
}
