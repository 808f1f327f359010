/**
 * The names an upload may be stored under. Every limit is a 400 that names it, so no request reaches the
 * file system with a name it would choke on (ENAMETOOLONG answered with the data folder's path in it), a
 * dotfile no one could view again, a folder tree without end, or a folder that shadows the shipped examples.
 */
import path from "node:path";
import { HttpError } from "../http/http-error.ts";
import { PICTURE_EXTENSIONS, type PictureType } from "./picture-type.ts";

export const MAX_NAME_CHARS = 128;
export const MAX_SUBFOLDER_CHARS = 128;
export const MAX_SUBFOLDER_DEPTH = 3;

const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._ -]*$/;
const ALLOWED_SEGMENT = "letters, digits, '_', '-', '.' and spaces, not starting with '.' or a space";

/**
 * The stored name of an uploaded picture: the client's name without folders, odd characters or leading dots,
 * ending in the extension of what the bytes are (xss.html holding a PNG is stored as xss.png).
 */
export function uploadName(clientName: string | undefined, type: PictureType): string {
  const given = path.basename((clientName ?? "").replace(/\\/g, "/"));
  if (given.length > MAX_NAME_CHARS) {
    throw new HttpError(400, "invalid_filename", `the file name is ${given.length} characters long; the limit is ${MAX_NAME_CHARS}`, {
      field: "image",
      limit: MAX_NAME_CHARS,
    });
  }
  const extensions = PICTURE_EXTENSIONS[type];
  const givenExtension = path.extname(given);
  const stem = given
    .slice(0, given.length - givenExtension.length)
    .replace(/[^A-Za-z0-9._ -]+/g, "_")
    // A dotfile is hidden from every listing and refused by /api/view: keep the name, lose the dot.
    .replace(/^[. ]+/, "")
    .replace(/[. ]+$/, "");
  const extension = extensions.includes(givenExtension.toLowerCase()) ? givenExtension : extensions[0];
  return `${stem || "upload"}${extension}`;
}

/**
 * A subfolder of input/ or temp/ as segments, checked: at most MAX_SUBFOLDER_CHARS characters and
 * MAX_SUBFOLDER_DEPTH levels, plain names only, and not one of `reserved` (the shipped examples' folders).
 */
export function uploadSubfolder(value: string | undefined, reserved: readonly string[]): string {
  const subfolder = (value ?? "").replace(/\/+$/, "");
  if (!subfolder) return "";
  if (subfolder.length > MAX_SUBFOLDER_CHARS) {
    throw new HttpError(400, "invalid_subfolder", `subfolder is ${subfolder.length} characters long; the limit is ${MAX_SUBFOLDER_CHARS}`, {
      field: "subfolder",
      limit: MAX_SUBFOLDER_CHARS,
    });
  }
  const segments = subfolder.split("/");
  if (segments.length > MAX_SUBFOLDER_DEPTH) {
    throw new HttpError(400, "invalid_subfolder", `subfolder is ${segments.length} levels deep; the limit is ${MAX_SUBFOLDER_DEPTH}`, {
      field: "subfolder",
      limit: MAX_SUBFOLDER_DEPTH,
    });
  }
  for (const segment of segments) {
    if (!SEGMENT.test(segment) || segment.endsWith(" ") || segment.endsWith(".")) {
      throw new HttpError(400, "invalid_subfolder", `subfolder ${JSON.stringify(subfolder)} is not allowed: each part may hold ${ALLOWED_SEGMENT}`, {
        field: "subfolder",
      });
    }
  }
  const first = segments[0].toLowerCase();
  if (reserved.some((name) => name.toLowerCase() === first)) {
    throw new HttpError(400, "read_only_subfolder", `subfolder "${segments[0]}" holds the shipped examples and is read-only: upload to another subfolder`, {
      field: "subfolder",
    });
  }
  return subfolder;
}

/** A name or subfolder given to /api/view or a listing: long ones are refused before they reach the file system. */
export function checkNameLength(value: string, field: string, limit: number): void {
  if (value.length > limit) {
    throw new HttpError(400, "invalid_filename", `${field} is ${value.length} characters long; the limit is ${limit}`, { field, limit });
  }
}
