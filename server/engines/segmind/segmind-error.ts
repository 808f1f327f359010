import type { SegmindFieldProblem } from "./segmind-request.ts";

export type SegmindErrorCode =
  | "missing-api-key"
  | "invalid-request"
  | "http-status"
  | "timeout"
  | "network"
  | "bad-response";

/**
 * A Segmind call that failed, with a message meant for the node's error display. `status` is
 * Segmind's HTTP status when it answered one; `retryable` says whether the failure is of a kind
 * that may pass on its own (rate limit, gateway, network), whether or not retries were spent.
 */
export class SegmindError extends Error {
  constructor(
    message: string,
    readonly code: SegmindErrorCode,
    readonly options: {
      readonly status?: number;
      readonly retryable?: boolean;
      /** Segmind's own error text from the response body, when it gave one. */
      readonly detail?: string;
      /** Requests sent before giving up (0 when the request never left this process). */
      readonly attempts?: number;
      /** For invalid-request: one entry per offending field. */
      readonly problems?: readonly SegmindFieldProblem[];
      readonly cause?: unknown;
    } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "SegmindError";
  }

  get status(): number | undefined {
    return this.options.status;
  }

  get retryable(): boolean {
    return this.options.retryable ?? false;
  }

  get detail(): string | undefined {
    return this.options.detail;
  }

  get attempts(): number {
    return this.options.attempts ?? 0;
  }

  get problems(): readonly SegmindFieldProblem[] {
    return this.options.problems ?? [];
  }
}
