/**
 * Reads the tEXt chunks of a PNG in the browser, to find the "workflow" a SaveImage PNG carries.
 * A PNG is an 8-byte signature then chunks of [length u32 BE][type 4 bytes][data][crc u32]; tEXt
 * data is `keyword NUL text`, both Latin-1. Small enough to read by hand, and no Node Buffer needed.
 */

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const MAX_CHUNKS = 100_000;

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= SIGNATURE.length && SIGNATURE.every((byte, i) => bytes[i] === byte);
}

/** keyword → text of every tEXt chunk before the image data ends; the first of a repeated keyword wins. */
export function readPngTextChunks(bytes: Uint8Array): Map<string, string> {
  if (!isPng(bytes)) throw new Error("not a PNG file");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const latin1 = new TextDecoder("latin1");
  const texts = new Map<string, string>();
  let offset = SIGNATURE.length;
  for (let count = 0; count < MAX_CHUNKS && offset + 8 <= bytes.length; count++) {
    const length = view.getUint32(offset);
    const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
    const dataStart = offset + 8;
    const dataEnd = dataStart + length;
    if (dataEnd + 4 > bytes.length) throw new Error(`PNG chunk ${type} runs past the end of the file`);
    if (type === "tEXt") {
      const data = bytes.subarray(dataStart, dataEnd);
      const separator = data.indexOf(0);
      if (separator > 0) {
        const keyword = latin1.decode(data.subarray(0, separator));
        if (!texts.has(keyword)) texts.set(keyword, latin1.decode(data.subarray(separator + 1)));
      }
    }
    if (type === "IEND") break;
    offset = dataEnd + 4;
  }
  return texts;
}

/** The workflow JSON a PNG carries in its "workflow" tEXt chunk, or undefined when it has none. */
export function readWorkflowFromPng(bytes: Uint8Array): unknown {
  const text = readPngTextChunks(bytes).get("workflow");
  if (text === undefined) return undefined;
  return JSON.parse(text) as unknown;
}
