import type { ErrorRequestHandler } from "express";
import os from "node:os";
import type { ServerLog } from "../logging/server-log.ts";
import { describeFailure } from "../logging/server-log.ts";
import { WorkflowInvalidError } from "../workflow/workflow-problem.ts";
import { HttpError } from "./http-error.ts";

type ErrorBody = { code: string; message: string; details?: unknown };

/**
 * Every failure as `{error: {code, message, details}}`, with the status the cause deserves. An answer never
 * carries a server path: an unexpected error is answered with a generic line (its message, which may name
 * files, goes to the log only), and the folders the server knows are replaced by a placeholder in every message.
 */
export function sendError(log: ServerLog, privateFolders: readonly string[] = []): ErrorRequestHandler {
  const hidden = [...privateFolders, os.homedir()].filter((folder) => folder.length > 1).sort((a, b) => b.length - a.length);
  return (error: unknown, req, res, _next) => {
    const { status, body, headers } = describe(error);
    // A deliberate 5xx (Redis away, an engine missing) is one line; anything else is a bug and keeps its stack.
    if (error instanceof HttpError && status >= 500) log.warn(`${req.method} ${req.path}: ${status} ${body.code}: ${body.message}`);
    else if (status >= 500) log.error(`${req.method} ${req.path} failed: ${describeFailure(error)}`);
    let message = body.message;
    for (const folder of hidden) message = message.split(folder).join("…");
    res.status(status).set(headers).json({ error: { ...body, message } });
  };
}

function describe(error: unknown): { status: number; body: ErrorBody; headers: Record<string, string> } {
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
  const filesystem = describeFileSystemError(error);
  if (filesystem) return { ...filesystem, headers: {} };
  // body-parser's own errors carry a status and a type.
  const parserError = error as { status?: number; type?: string; message?: string; limit?: number };
  if (parserError?.type === "entity.parse.failed") {
    return { status: 400, body: { code: "malformed_json", message: `request body is not valid JSON: ${parserError.message}` }, headers: {} };
  }
  if (parserError?.type === "entity.too.large") {
    return { status: 413, body: { code: "body_too_large", message: `request body is larger than the limit of ${parserError.limit} bytes` }, headers: {} };
  }
  if (parserError?.type === "encoding.unsupported") {
    return { status: 415, body: { code: "unsupported_encoding", message: "request body encoding is not supported: send identity, gzip or deflate" }, headers: {} };
  }
  if (typeof parserError?.status === "number" && parserError.status >= 400 && parserError.status < 500) {
    return { status: parserError.status, body: { code: "bad_request", message: parserError.message ?? "bad request" }, headers: {} };
  }
  return { status: 500, body: { code: "internal_error", message: "the server failed to answer this request; the reason is in its log" }, headers: {} };
}

/** File system errors as what they mean to a client, without the path Node puts in their message. */
function describeFileSystemError(error: unknown): { status: number; body: ErrorBody } | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case "ENAMETOOLONG":
      return { status: 400, body: { code: "invalid_filename", message: "a file or folder name is too long for the server's file system" } };
    case "EACCES":
    case "EPERM":
    case "EROFS":
      return { status: 500, body: { code: "storage_not_writable", message: "the server may not read or write its data folder; the reason is in its log" } };
    case "ENOSPC":
    case "EDQUOT":
      return { status: 507, body: { code: "storage_full", message: "the server's disk is full" } };
    default:
      return undefined;
  }
}
