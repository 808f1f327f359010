/**
 * The 429s a queue answers, shared by the embedded and the Redis queue so clients see the same
 * codes either way: `queue_full` (too many jobs waiting in all) and `client_queue_full` (too many
 * waiting from one clientId, so one client cannot fill the queue for everyone), and the Retry-After
 * they carry.
 */
import { HttpError } from "../http/http-error.ts";

/** Retry-After never says less than this (a 0 invites a busy loop) … */
export const MIN_RETRY_AFTER_S = 1;
/** … nor more: past a minute the estimate is a guess, and a client should look again rather than sleep on it. */
export const MAX_RETRY_AFTER_S = 60;
/** Assumed for a job when none has finished yet. */
const UNKNOWN_DURATION_MS = 1000;

/** The middle of the recent durations: one job that took minutes does not make every later estimate minutes. */
export function medianMs(durationsMs: readonly number[]): number | undefined {
  if (!durationsMs.length) return undefined;
  const sorted = [...durationsMs].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * Seconds until a retry can succeed: the jobs that must end first (`jobsAhead`, at least one) times
 * the median recent duration, rounded up and kept within 1..60 s.
 */
export function retryAfterSeconds(jobsAhead: number, recentDurationsMs: readonly number[]): number {
  const perJob = medianMs(recentDurationsMs) ?? UNKNOWN_DURATION_MS;
  const seconds = Math.ceil((Math.max(1, jobsAhead) * perJob) / 1000);
  return Math.min(MAX_RETRY_AFTER_S, Math.max(MIN_RETRY_AFTER_S, seconds));
}

export function queueFullError(maxPending: number, retryAfter: number): HttpError {
  return new HttpError(
    429,
    "queue_full",
    `the queue is full (${maxPending} jobs waiting); try again in about ${retryAfter} s`,
    { maxPending },
    { "Retry-After": String(retryAfter) },
  );
}

export function clientQueueFullError(clientId: string, maxPendingPerClient: number, retryAfter: number): HttpError {
  return new HttpError(
    429,
    "client_queue_full",
    `client "${clientId}" already has ${maxPendingPerClient} jobs waiting (the limit per client); try again in about ${retryAfter} s`,
    { clientId, maxPendingPerClient },
    { "Retry-After": String(retryAfter) },
  );
}

/** A batch that could never fit: more jobs than the queue (or one client) may have waiting at all. A retry cannot help, so a 400. */
export function batchOverLimitError(count: number, limit: number, whose: "the queue" | "one client"): HttpError {
  return new HttpError(
    400,
    "batch_too_large",
    `the batch has ${count} jobs and ${whose} may have at most ${limit} waiting; split it into batches of ${limit} or fewer`,
    { count, limit },
  );
}

/** A batch that fits the queue's size but not the room left in it now. */
export function batchDoesNotFitError(count: number, room: number, limitKey: string | undefined, retryAfter: number): HttpError {
  const whose = limitKey === undefined ? "the queue has" : `client "${limitKey}" has`;
  return new HttpError(
    429,
    limitKey === undefined ? "queue_full" : "client_queue_full",
    `the batch has ${count} jobs and ${whose} room for ${room} more now; nothing was queued; try again in about ${retryAfter} s`,
    { count, room, ...(limitKey === undefined ? {} : { clientId: limitKey }) },
    { "Retry-After": String(retryAfter) },
  );
}
