/**
 * What a file is by its first bytes (its magic number), so a picture or an archive handed to the CLI as a
 * workflow is named as such instead of being parsed as JSON.
 */

export interface FileKind {
  /** "a JPEG picture", "a ZIP archive", … */
  readonly description: string;
  /** The short name used in "a PNG written by SaveImage carries its workflow, a JPEG does not". */
  readonly pictureFormat?: string;
}

interface Signature {
  readonly offset: number;
  readonly bytes: readonly number[] | string;
}

const PNG: FileKind = { description: "a PNG picture", pictureFormat: "PNG" };
const GIF: FileKind = { description: "a GIF picture", pictureFormat: "GIF" };
const TIFF: FileKind = { description: "a TIFF picture", pictureFormat: "TIFF" };

/** Each entry matches when all its signatures do (RIFF … WEBP); a kind with variants has an entry per variant. */
const KINDS: readonly { readonly all: readonly Signature[]; readonly kind: FileKind }[] = [
  { all: [{ offset: 0, bytes: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] }], kind: PNG },
  { all: [{ offset: 0, bytes: [0xff, 0xd8, 0xff] }], kind: { description: "a JPEG picture", pictureFormat: "JPEG" } },
  { all: [{ offset: 0, bytes: "GIF87a" }], kind: GIF },
  { all: [{ offset: 0, bytes: "GIF89a" }], kind: GIF },
  { all: [{ offset: 0, bytes: "RIFF" }, { offset: 8, bytes: "WEBP" }], kind: { description: "a WebP picture", pictureFormat: "WebP" } },
  { all: [{ offset: 4, bytes: "ftypavif" }], kind: { description: "an AVIF picture", pictureFormat: "AVIF" } },
  { all: [{ offset: 4, bytes: "ftypheic" }], kind: { description: "a HEIC picture", pictureFormat: "HEIC" } },
  { all: [{ offset: 0, bytes: [0x49, 0x49, 0x2a, 0x00] }], kind: TIFF },
  { all: [{ offset: 0, bytes: [0x4d, 0x4d, 0x00, 0x2a] }], kind: TIFF },
  { all: [{ offset: 0, bytes: "BM" }], kind: { description: "a BMP picture", pictureFormat: "BMP" } },
  { all: [{ offset: 0, bytes: "%PDF-" }], kind: { description: "a PDF document" } },
  { all: [{ offset: 0, bytes: [0x50, 0x4b, 0x03, 0x04] }], kind: { description: "a ZIP archive" } },
  { all: [{ offset: 0, bytes: [0x1f, 0x8b] }], kind: { description: "a gzip archive" } },
];

function matches(bytes: Uint8Array, signature: Signature): boolean {
  const expected = typeof signature.bytes === "string" ? [...Buffer.from(signature.bytes, "latin1")] : signature.bytes;
  if (bytes.length < signature.offset + expected.length) return false;
  return expected.every((byte, i) => bytes[signature.offset + i] === byte);
}

/** The kind of a known binary format, or undefined for anything else (text, or a format not listed). */
export function detectFileKind(bytes: Uint8Array): FileKind | undefined {
  return KINDS.find(({ all }) => all.every((signature) => matches(bytes, signature)))?.kind;
}
