import path from "node:path";
import { HttpError } from "../http/http-error.ts";

/**
 * Resolves a user-supplied file name inside a folder; a name that would leave it (`..`, absolute paths,
 * NUL bytes) is a 400 naming the field, so no request can read or write outside the data folders.
 */
export function resolveInside(folder: string, name: string, field: string): string {
  if (typeof name !== "string" || name.length === 0) {
    throw new HttpError(400, "invalid_filename", `${field} must be a non-empty file name`, { field });
  }
  if (name.includes("\0") || path.isAbsolute(name) || name.split(/[\\/]/).includes("..")) {
    throw new HttpError(400, "invalid_filename", `${field} "${name}" leaves its folder: use a plain name inside it`, {
      field,
    });
  }
  const root = path.resolve(folder);
  const resolved = path.resolve(root, name);
  if (resolved !== root && !resolved.startsWith(root + path.sep)) {
    throw new HttpError(400, "invalid_filename", `${field} "${name}" leaves its folder`, { field });
  }
  return resolved;
}
