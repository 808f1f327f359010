import { createHash, timingSafeEqual } from "node:crypto";
import type { RequestHandler } from "express";
import { HttpError } from "./http-error.ts";

/** Keys from MASKFLOW_API_KEYS: comma or whitespace separated; none means no key is asked for. */
export function parseApiKeys(value: string | undefined): string[] {
  return (value ?? "").split(/[\s,]+/).filter(Boolean);
}

/** 401 unless the request's `x-api-key` is one of the keys (compared in constant time). */
export function requireApiKey(keys: readonly string[]): RequestHandler {
  const digests = keys.map(digest);
  return (req, _res, next) => {
    if (!digests.length) return next();
    const given = req.get("x-api-key");
    if (!given) return next(new HttpError(401, "missing_api_key", "this server needs an API key: send it in the x-api-key header"));
    const candidate = digest(given);
    if (!digests.some((key) => timingSafeEqual(key, candidate))) {
      return next(new HttpError(401, "invalid_api_key", "the x-api-key header does not hold a valid key for this server"));
    }
    next();
  };
}

function digest(key: string): Buffer {
  return createHash("sha256").update(key).digest();
}
