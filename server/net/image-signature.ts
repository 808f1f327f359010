// Image formats recognised by their first bytes. A Content-Type header is a claim; the magic
// number is what the bytes are, so every image that enters Maskflow from outside is checked here.

export type ImageMediaType = "image/jpeg" | "image/png" | "image/webp";

/** The image type the bytes start with, or undefined when they are none of JPEG, PNG, WebP. */
export function detectImageType(bytes: Uint8Array): ImageMediaType | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "image/jpeg";
  if (
    bytes.length >= 8 &&
    bytes[0] === 0x89 &&
    bytes[1] === 0x50 &&
    bytes[2] === 0x4e &&
    bytes[3] === 0x47 &&
    bytes[4] === 0x0d &&
    bytes[5] === 0x0a &&
    bytes[6] === 0x1a &&
    bytes[7] === 0x0a
  ) {
    return "image/png";
  }
  if (bytes.length >= 12 && ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 12) === "WEBP") return "image/webp";
  return undefined;
}

function ascii(bytes: Uint8Array, start: number, end: number): string {
  return String.fromCharCode(...bytes.subarray(start, end));
}

/**
 * The first bytes of a payload as readable text for an error message: printable ASCII as is,
 * anything else as \xNN, so an HTML error page or a JSON error reads naturally.
 */
export function quoteLeadingBytes(bytes: Uint8Array, count = 100): string {
  const head = bytes.subarray(0, count);
  let text = "";
  for (const byte of head) {
    if (byte === 0x0a) text += "\\n";
    else if (byte === 0x0d) text += "\\r";
    else if (byte === 0x09) text += "\\t";
    else if (byte >= 0x20 && byte < 0x7f) text += String.fromCharCode(byte);
    else text += `\\x${byte.toString(16).padStart(2, "0")}`;
  }
  const more = bytes.length > count ? `... (${bytes.length} bytes in all)` : "";
  return bytes.length === 0 ? "(empty)" : `"${text}"${more}`;
}
