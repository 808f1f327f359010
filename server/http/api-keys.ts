import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { RequestHandler } from "express";
import { HttpError } from "./http-error.ts";

/** The cookie the editor keeps the key in, so pictures (<img src>) and the WebSocket carry it too. */
export const API_KEY_COOKIE = "maskflow_api_key";

/** Keys from MASKFLOW_API_KEYS: comma or whitespace separated; none means no key is asked for. */
export function parseApiKeys(value: string | undefined): string[] {
  return (value ?? "").split(/[\s,]+/).filter(Boolean);
}

/**
 * Checks a request's key (the `x-api-key` header, else the editor's cookie) against the keys, in constant
 * time. Undefined when no key is needed or the key is good; otherwise why not.
 */
export function apiKeyProblem(keys: readonly string[], request: IncomingMessage): HttpError | undefined {
  if (!keys.length) return undefined;
  const header = request.headers["x-api-key"];
  const given = (Array.isArray(header) ? header[0] : header) ?? cookieValue(request.headers.cookie, API_KEY_COOKIE);
  if (!given) return new HttpError(401, "missing_api_key", "this server needs an API key: send it in the x-api-key header");
  const candidate = digest(given);
  if (!keys.map(digest).some((key) => timingSafeEqual(key, candidate))) {
    return new HttpError(401, "invalid_api_key", "the x-api-key header does not hold a valid key for this server");
  }
  return undefined;
}

/** 401 unless the request carries one of the keys. */
export function requireApiKey(keys: readonly string[]): RequestHandler {
  return (req, _res, next) => next(apiKeyProblem(keys, req));
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) {
      try {
        return decodeURIComponent(rest.join("="));
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

function digest(key: string): Buffer {
  return createHash("sha256").update(key).digest();
}
