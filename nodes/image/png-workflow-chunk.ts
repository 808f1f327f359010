/**
 * A saved PNG carries the workflow that made it in a tEXt chunk with keyword "workflow" (as ComfyUI
 * does), so dropping the PNG on the editor or passing it to the CLI brings the graph back.
 */
import extractChunks from "png-chunks-extract";
import encodeChunks from "png-chunks-encode";
import pngText from "png-chunk-text";

export const WORKFLOW_KEYWORD = "workflow";

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] as const;

/** The PNG with `workflow` as JSON in a tEXt chunk right after IHDR; an earlier workflow chunk is replaced. */
export function embedWorkflow(png: Uint8Array, workflow: unknown): Uint8Array {
  const chunks = extractChunks(requirePng(png, "embedWorkflow"));
  const kept = chunks.filter((chunk) => !isWorkflowChunk(chunk));
  const json = JSON.stringify(workflow);
  if (json === undefined) {
    throw new Error("embedWorkflow: the workflow cannot be written as JSON");
  }
  const textChunk = pngText.encode(WORKFLOW_KEYWORD, escapeToAscii(json));
  // IHDR must stay first; readers that stop at the first IDAT still see a chunk placed before it.
  return encodeChunks([kept[0], textChunk, ...kept.slice(1)]);
}

/** The workflow a PNG carries, or undefined when it has no "workflow" tEXt chunk. */
export function readWorkflowFromPng(png: Uint8Array): unknown | undefined {
  const chunk = extractChunks(requirePng(png, "readWorkflowFromPng")).find(isWorkflowChunk);
  if (!chunk) return undefined;
  const { text } = pngText.decode(chunk.data);
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new Error(`readWorkflowFromPng: the "${WORKFLOW_KEYWORD}" chunk is not valid JSON (${(error as Error).message})`);
  }
}

function isWorkflowChunk(chunk: { name: string; data: Uint8Array }): boolean {
  return chunk.name === "tEXt" && pngText.decode(chunk.data).keyword === WORKFLOW_KEYWORD;
}

function requirePng(bytes: Uint8Array, caller: string): Uint8Array {
  if (bytes.length < PNG_SIGNATURE.length || PNG_SIGNATURE.some((byte, i) => bytes[i] !== byte)) {
    throw new Error(`${caller}: the bytes are not a PNG file`);
  }
  return bytes;
}

/**
 * tEXt holds Latin-1 only, and readers disagree on decoding bytes above 127; escaping every
 * non-ASCII character as \uXXXX keeps the JSON identical for all of them (prompts in any script survive).
 */
function escapeToAscii(json: string): string {
  return json.replace(/[\u007f-\uffff]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
