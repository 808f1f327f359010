/**
 * Opens any SD checkpoint by what its bytes are, not by its extension: model sites serve .ckpt files that are
 * safetensors and .safetensors that are not, so the first bytes decide.
 */
import { open } from "node:fs/promises";
import path from "node:path";
import { openCkpt } from "./ckpt-file.ts";
import { CheckpointError, type CheckpointFile } from "./checkpoint-tensor.ts";
import { openSafetensors, SAFETENSORS_MAX_HEADER_BYTES } from "./safetensors-file.ts";

type Kind = "zip" | "pickle" | "safetensors" | "unknown";

/** Sniffs the first bytes: a zip's local header, a pickle's PROTO opcode, or a plausible safetensors header length then "{". */
function kindOf(head: Uint8Array, fileSize: number): Kind {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return "zip";
  // Safetensors before pickle: a header length's low byte is 0x80 (pickle's PROTO) in one file of 32.
  if (head.length >= 9) {
    const headerLength = new DataView(head.buffer, head.byteOffset, head.byteLength).getBigUint64(0, true);
    if (headerLength <= BigInt(Math.min(SAFETENSORS_MAX_HEADER_BYTES, fileSize - 8)) && head[8] === 0x7b) return "safetensors";
  }
  if (head.length >= 1 && head[0] === 0x80) return "pickle";
  return "unknown";
}

/** Opens a .safetensors or a torch .ckpt/.pt (zip) checkpoint, refusing anything else with a CheckpointError. */
export async function openCheckpoint(file: string): Promise<CheckpointFile> {
  const handle = await open(file, "r");
  let head: Uint8Array;
  let size: number;
  try {
    size = (await handle.stat()).size;
    head = new Uint8Array(9);
    const { bytesRead } = await handle.read(head, 0, 9, 0);
    head = head.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
  const kind = kindOf(head, size);
  if (kind === "zip" || kind === "pickle") return openCkpt(file);
  // A damaged .safetensors (truncated, a broken header) is best told by the safetensors reader's own errors.
  if (kind === "safetensors" || path.extname(file).toLowerCase() === ".safetensors") return openSafetensors(file);
  const start = [...head.subarray(0, 8)].map((byte) => byte.toString(16).padStart(2, "0")).join(" ");
  throw new CheckpointError(
    file,
    `not a checkpoint: expected a .safetensors or a torch .ckpt (zip) file, but it starts with ${size === 0 ? "nothing (it is empty)" : `bytes ${start}`}`,
  );
}
