/**
 * The key check as middleware, mounted before any body parser: a request without a valid key is answered
 * 401 before a byte of its body is read, parsed or inflated (a gzip bomb costs nothing).
 */
import type { Request, RequestHandler, Response } from "express";
import type { ApiKeys } from "./api-keys.ts";

/** 401 unless the request shows one of the keys (or no key is needed). */
export function requireKey(keys: ApiKeys): RequestHandler {
  return (req, res, next) => {
    const check = keys.check(req);
    if (!check.ok) return next(check.problem);
    res.locals.caller = check.holder ? `API key ${check.holder.keyId.slice(0, 8)}` : `address ${req.socket.remoteAddress ?? "unknown"}`;
    next();
  };
}

/**
 * Who --max-queue-per-client counts a request against when it names no clientId: its API key when the server
 * has keys, else its address. Set by requireKey.
 */
export function callerOf(res: Response): string {
  return typeof res.locals.caller === "string" ? res.locals.caller : "unknown caller";
}

/**
 * Whether the page reached the server over https, so its cookie must be Secure: TLS on this socket, an https
 * Origin (a browser's own statement of its page's scheme), or X-Forwarded-Proto from a proxy on this machine.
 */
export function requestIsHttps(req: Request): boolean {
  if (req.secure) return true;
  if (typeof req.headers.origin === "string" && req.headers.origin.startsWith("https://")) return true;
  const forwarded = req.headers["x-forwarded-proto"];
  const proto = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(",")[0]?.trim().toLowerCase();
  const peer = req.socket.remoteAddress ?? "";
  return proto === "https" && (peer === "::1" || peer.startsWith("127.") || peer.startsWith("::ffff:127."));
}
