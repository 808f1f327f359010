/**
 * The jobs of one batch (POST /api/prompt/batch) gathered from the queue and the history page, and the
 * queue panel's group for them: one line with the batch's progress that opens into a row per picture.
 */
import { type HistoryEntry, type JobSummary, viewUrl } from "../api/maskflow-api.ts";
import { escapeHtml } from "./escape-html.ts";

export interface BatchGroup {
  readonly id: string;
  readonly count: number;
  readonly running: JobSummary[];
  readonly pending: JobSummary[];
  /** The batch's finished jobs on the history page (older ones may be past it). */
  readonly finished: HistoryEntry[];
  /** When the batch was queued, for the order of the groups. */
  readonly createdAt: string;
}

/** Batches with work left first, then the newest. */
export function batchGroups(running: readonly JobSummary[], pending: readonly JobSummary[], history: readonly HistoryEntry[]): BatchGroup[] {
  const groups = new Map<string, BatchGroup>();
  const groupOf = (batch: { id: string; count: number }, createdAt: string) => {
    let group = groups.get(batch.id);
    if (!group) groups.set(batch.id, (group = { id: batch.id, count: batch.count, running: [], pending: [], finished: [], createdAt }));
    return group;
  };
  for (const job of running) if (job.batch) groupOf(job.batch, job.createdAt).running.push(job);
  for (const job of pending) if (job.batch) groupOf(job.batch, job.createdAt).pending.push(job);
  for (const entry of history) if (entry.batch) groupOf(entry.batch, entry.createdAt).finished.push(entry);
  const active = (group: BatchGroup) => group.running.length + group.pending.length > 0;
  return [...groups.values()].sort((a, b) => Number(active(b)) - Number(active(a)) || b.createdAt.localeCompare(a.createdAt));
}

export function renderBatchGroup(group: BatchGroup, open: boolean): string {
  const done = group.finished.filter((entry) => entry.status === "success").length;
  const failed = group.finished.filter((entry) => entry.status === "error").length;
  const stopped = group.finished.filter((entry) => entry.status === "interrupted").length;
  const left = group.running.length + group.pending.length;
  // Finished jobs past the history page, and jobs cancelled before they ran.
  const unseen = group.count - left - group.finished.length;
  const counts = [
    // With jobs it cannot see, "done" would undercount: say how many have left the queue instead.
    unseen > 0 ? `${group.count - left}/${group.count} ended` : `${done}/${group.count} done`,
    ...(failed ? [`${failed} failed`] : []),
    ...(stopped ? [`${stopped} stopped`] : []),
    ...(group.running.length ? [`${group.running.length} running`] : []),
    ...(group.pending.length ? [`${group.pending.length} waiting`] : []),
  ];
  const rows: Array<{ index: number; html: string }> = [];
  for (const job of group.running) {
    rows.push({ index: job.batch!.index, html: `<div class="mf-job mf-running" data-job="${job.id}"><span>▶ ${escapeHtml(job.batch!.name)}</span><button data-do="interrupt">Stop</button></div>` });
  }
  for (const job of group.pending) {
    rows.push({ index: job.batch!.index, html: `<div class="mf-job mf-waiting" data-job="${job.id}"><span>· ${escapeHtml(job.batch!.name)} waiting</span><button data-do="cancel">Cancel</button></div>` });
  }
  for (const entry of group.finished) {
    const thumbs = Object.values(entry.outputs ?? {})
      .flatMap((output) => output.images ?? [])
      .slice(0, 2)
      .map((ref) => `<img src="${viewUrl(ref)}" data-full="${viewUrl(ref)}" alt="" loading="lazy">`)
      .join("");
    const mark = entry.status === "success" ? "✓" : entry.status === "error" ? "✗" : "■";
    const error = entry.error ? `<div class="mf-job-error">${escapeHtml(entry.error.message)}</div>` : "";
    const buttons = entry.workflow ? `<button data-do="load">Load</button><button data-do="rerun">Re-run</button>` : "";
    rows.push({
      index: entry.batch!.index,
      html: `<div class="mf-job mf-status-${entry.status}" data-job="${entry.id}"><span>${mark} ${escapeHtml(entry.batch!.name)} · ${(entry.durationMs / 1000).toFixed(1)} s</span>${buttons}<div class="mf-thumbs">${thumbs}</div>${error}</div>`,
    });
  }
  const more = unseen > 0 ? `<p class="mf-empty">${unseen} more not listed (older history, or cancelled)</p>` : "";
  return `<details class="mf-batch${left ? " mf-batch-active" : ""}" data-batch="${escapeHtml(group.id)}"${open ? " open" : ""}>
    <summary><span class="mf-batch-title">Batch of ${group.count} · ${counts.join(", ")}</span>
      <progress max="${group.count}" value="${group.count - left}"></progress>${group.pending.length ? '<button data-do="cancel-batch">Cancel rest</button>' : ""}</summary>
    ${rows.sort((a, b) => a.index - b.index).map((row) => row.html).join("")}${more}
  </details>`;
}
