/**
 * An error that knows its HTTP status; every route answers it as `{error: {code, message, details}}`.
 * Thrown from anywhere at the edges (validation, storage) so the message reaches the user unchanged.
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}
