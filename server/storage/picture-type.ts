/**
 * What an uploaded or served file is, by its first bytes: the only types Maskflow stores and serves are
 * pictures. A name or a Content-Type is a claim; a file named xss.html holding a PNG is a PNG, and an SVG
 * (which may carry scripts) is not a picture here.
 */
import { detectImageType } from "../net/image-signature.ts";

export type PictureType = "image/png" | "image/jpeg" | "image/webp" | "image/gif";

export const PICTURE_EXTENSIONS: Readonly<Record<PictureType, readonly string[]>> = {
  "image/png": [".png"],
  "image/jpeg": [".jpg", ".jpeg"],
  "image/webp": [".webp"],
  "image/gif": [".gif"],
};

export const ALLOWED_PICTURES = "PNG, JPEG, WebP or GIF";

/** Bytes enough to tell every PictureType apart. */
export const SNIFF_BYTES = 16;

export function sniffPicture(bytes: Uint8Array): PictureType | undefined {
  const known = detectImageType(bytes);
  if (known) return known;
  const head = String.fromCharCode(...bytes.subarray(0, 6));
  return head === "GIF87a" || head === "GIF89a" ? "image/gif" : undefined;
}

/** What a refused file looks like, in a word or two, for the 400 that refuses it. */
export function describeNonPicture(bytes: Uint8Array): string {
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes.subarray(0, 1024)).replace(/^\uFEFF/, "").trimStart().toLowerCase();
  if (bytes.length === 0) return "an empty file";
  if (/^(<\?xml[^>]*>\s*)?(<!--[\s\S]*?-->\s*)*(<!doctype svg|<svg[\s>])/.test(text) || /<svg[\s>]/.test(text)) return "an SVG image (SVG can carry scripts)";
  if (/^(<!doctype html|<html|<head|<body|<script|<iframe|<!--)/.test(text) || /<(html|script|body)[\s>]/.test(text)) return "an HTML document";
  if (text.startsWith("<?xml")) return "an XML document";
  if (text.startsWith("%pdf")) return "a PDF document";
  if (bytes[0] === 0x42 && bytes[1] === 0x4d) return "a BMP image";
  if ((bytes[0] === 0x49 && bytes[1] === 0x49 && bytes[2] === 0x2a) || (bytes[0] === 0x4d && bytes[1] === 0x4d && bytes[2] === 0x00)) return "a TIFF image";
  if (String.fromCharCode(...bytes.subarray(4, 12)).startsWith("ftyp")) return "an ISO media file (AVIF/HEIC/MP4)";
  const printable = [...bytes.subarray(0, 512)].every((b) => b === 9 || b === 10 || b === 13 || (b >= 0x20 && b !== 0x7f));
  if (printable) return "text";
  return "binary data of no known picture type";
}
