// Typings for the three small PNG chunk packages, which ship none.

declare module "png-chunks-extract" {
  interface PngChunk {
    name: string;
    data: Uint8Array;
  }
  /** Splits a PNG file into its chunks (IHDR first, IEND last); throws on a bad signature or CRC. */
  function extractChunks(data: Uint8Array): PngChunk[];
  export = extractChunks;
}

declare module "png-chunks-encode" {
  /** Joins chunks into a PNG file: signature, then each chunk with its length and CRC. */
  function encodeChunks(chunks: ReadonlyArray<{ name: string; data: Uint8Array }>): Uint8Array;
  export = encodeChunks;
}

declare module "png-chunk-text" {
  /** A tEXt chunk; keyword and text must be Latin-1, the keyword under 80 characters. */
  export function encode(keyword: string, text: string): { name: "tEXt"; data: Uint8Array };
  export function decode(chunk: Uint8Array | { name: string; data: Uint8Array }): { keyword: string; text: string };
}
