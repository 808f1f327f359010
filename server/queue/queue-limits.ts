/**
 * The two 429s a queue answers, shared by the embedded and the Redis queue so clients see the same
 * codes either way: `queue_full` (too many jobs waiting in all) and `client_queue_full` (too many
 * waiting from one clientId, so one client cannot fill the queue for everyone).
 */
import { HttpError } from "../http/http-error.ts";

/** A slot frees when a running job ends: about one average job from now (1 s when nothing has run yet). */
export function retryAfterSeconds(recentDurationsMs: readonly number[]): number {
  const average = recentDurationsMs.length ? recentDurationsMs.reduce((a, b) => a + b, 0) / recentDurationsMs.length : 1000;
  return Math.max(1, Math.ceil(average / 1000));
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
