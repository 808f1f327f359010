import type { RequestHandler } from "express";

/**
 * The editor's pages: scripts and styles only from the server's own files (vite's build has no inline script),
 * pictures also as data:/blob: (canvases, the mask editor), calls and the WebSocket to the same server, and no
 * other site may frame it (clickjacking).
 */
export const EDITOR_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** API answers and served pictures are never documents: nothing in them may run, even when opened directly. */
export const NO_CONTENT_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'";

/** Headers on every answer, errors included; routes under /api and /v1 get the strict policy. */
export function securityHeaders(): RequestHandler {
  return (req, res, next) => {
    res.set({
      "X-Content-Type-Options": "nosniff",
      "X-Frame-Options": "DENY",
      "Referrer-Policy": "no-referrer",
      "Cross-Origin-Opener-Policy": "same-origin",
      "Cross-Origin-Resource-Policy": "same-origin",
      "Content-Security-Policy": /^\/(api|v1)(\/|$)/.test(req.path) ? NO_CONTENT_CSP : EDITOR_CSP,
    });
    next();
  };
}
