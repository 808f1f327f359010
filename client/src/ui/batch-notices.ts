/**
 * One notice for a batch queued from this editor instead of one per picture: a batch of 100 would otherwise
 * stack 100 "Done" notices. Failures still get their own notice; the end of the batch says how it went.
 */
import type { QueuedBatch } from "../api/maskflow-api.ts";
import { notify } from "./notices.ts";

type Ending = "success" | "error" | "interrupted";

/** Jobs that ended before anyone tracked them, remembered: a fast batch's first job can end before its POST answers. */
const RECENT_ENDS = 500;

export class BatchNotices {
  /** Per job id, the batch it belongs to. */
  readonly #batchOf = new Map<string, { count: number; left: Set<string>; ended: Record<Ending, number> }>();
  readonly #recentEnds = new Map<string, Ending>();

  track(queued: QueuedBatch): void {
    const batch = { count: queued.jobs.length, left: new Set(queued.jobs.map((job) => job.id)), ended: { success: 0, error: 0, interrupted: 0 } };
    for (const job of queued.jobs) this.#batchOf.set(job.id, batch);
    for (const job of queued.jobs) {
      const how = this.#recentEnds.get(job.id);
      if (how) this.ended(job.id, how);
    }
  }

  /** A job ended: true when it was one of a tracked batch (its own success notice is then left out). */
  ended(jobId: string, how: Ending): boolean {
    const batch = this.#batchOf.get(jobId);
    if (!batch) {
      this.#recentEnds.set(jobId, how);
      if (this.#recentEnds.size > RECENT_ENDS) this.#recentEnds.delete(this.#recentEnds.keys().next().value!);
      return false;
    }
    this.#recentEnds.delete(jobId);
    this.#batchOf.delete(jobId);
    batch.left.delete(jobId);
    batch.ended[how]++;
    if (batch.left.size === 0) {
      const { success, error, interrupted } = batch.ended;
      const parts = [`${success} of ${batch.count} done`, ...(error ? [`${error} failed`] : []), ...(interrupted ? [`${interrupted} stopped`] : [])];
      notify(`Batch finished: ${parts.join(", ")}`, error ? "error" : "success", 6000);
    }
    return true;
  }
}
