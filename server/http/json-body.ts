/**
 * JSON request bodies, parsed where they cannot stall the server. The bytes are read (and inflated) by
 * express.raw within the byte limit; a small body is parsed in place, a larger one on the compute
 * pool's worker threads, which also refuse a body whose shape would make rebuilding it costly
 * (json-shape.ts). Only a value within those limits is carried back to the event loop.
 */
import express, { type RequestHandler } from "express";
import { runCompute } from "../compute/compute-pool.ts";
import { parseBoundedJson, type BoundedJsonOptions, type BoundedJsonResult } from "./bounded-json.ts";
import { HttpError } from "./http-error.ts";

/** Up to this many bytes a body is parsed on the event loop: at worst about a millisecond's work. */
const PARSE_IN_PLACE_BYTES = 4 * 1024;

/** The bytes of a JSON body as a value, off the event loop when they are many; a refusal is a 400 naming the field. */
export async function parseJsonBytes(bytes: Uint8Array, options: BoundedJsonOptions = {}): Promise<unknown> {
  const result: BoundedJsonResult =
    bytes.byteLength <= PARSE_IN_PLACE_BYTES ? parseBoundedJson(bytes, options) : await runCompute("parseJson", { bytes, options });
  if (result.ok) return result.value;
  throw new HttpError(400, result.code, result.message, result.field ? { field: result.field } : undefined);
}

/**
 * express.json's replacement: `req.body` is the parsed value for a JSON request, undefined for any other.
 * `limit` bounds the inflated bytes.
 */
export function jsonBody(limit: string, options: BoundedJsonOptions = {}): RequestHandler[] {
  const raw = express.raw({ type: options.keepLongSeeds ? () => true : "application/json", limit });
  const parse: RequestHandler = (req, _res, next) => {
    const bytes: unknown = req.body;
    if (!(bytes instanceof Uint8Array)) {
      req.body = undefined;
      next();
      return;
    }
    if (bytes.byteLength === 0) {
      req.body = undefined;
      next();
      return;
    }
    parseJsonBytes(bytes, options).then(
      (value) => {
        req.body = value;
        next();
      },
      next,
    );
  };
  return [raw, parse];
}
