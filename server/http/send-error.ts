import type { ErrorRequestHandler } from "express";
import type { ServerLog } from "../logging/server-log.ts";
import { describeFailure } from "../logging/server-log.ts";
import { WorkflowInvalidError } from "../workflow/workflow-problem.ts";
import { HttpError } from "./http-error.ts";

/** Every failure as `{error: {code, message, details}}`, with the status the cause deserves. */
export function sendError(log: ServerLog): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    const { status, body, headers } = describe(error);
    // A deliberate 5xx (Redis away, an engine missing) is one line; anything else is a bug and keeps its stack.
    if (error instanceof HttpError && status >= 500) log.warn(`${req.method} ${req.path}: ${status} ${body.code}: ${body.message}`);
    else if (status >= 500) log.error(`${req.method} ${req.path} failed: ${describeFailure(error)}`);
    res.status(status).set(headers).json({ error: body });
  };
}

function describe(error: unknown): { status: number; body: { code: string; message: string; details?: unknown }; headers: Record<string, string> } {
  if (error instanceof HttpError) {
    return { status: error.status, body: { code: error.code, message: error.message, details: error.details }, headers: { ...error.headers } };
  }
  if (error instanceof WorkflowInvalidError) {
    return {
      status: 400,
      body: { code: "invalid_workflow", message: error.message, details: { problems: error.problems } },
      headers: {},
    };
  }
  // body-parser's own errors carry a status and a type.
  const parserError = error as { status?: number; type?: string; message?: string; limit?: number };
  if (parserError?.type === "entity.parse.failed") {
    return { status: 400, body: { code: "malformed_json", message: `request body is not valid JSON: ${parserError.message}` }, headers: {} };
  }
  if (parserError?.type === "entity.too.large") {
    return { status: 413, body: { code: "body_too_large", message: `request body is larger than the limit of ${parserError.limit} bytes` }, headers: {} };
  }
  if (typeof parserError?.status === "number" && parserError.status >= 400 && parserError.status < 500) {
    return { status: parserError.status, body: { code: "bad_request", message: parserError.message ?? "bad request" }, headers: {} };
  }
  return { status: 500, body: { code: "internal_error", message: error instanceof Error ? error.message : String(error) }, headers: {} };
}
