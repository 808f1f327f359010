/**
 * Step previews travel as binary WebSocket frames, not JSON, to keep base64 off the wire:
 *
 *   bytes 0–3   uint32 BE  event type: 1 = preview image
 *   bytes 4–7   uint32 BE  image format: 1 = JPEG
 *   bytes 8–9   uint16 BE  n = byte length of the node id
 *   bytes 10…   n bytes    node id (UTF-8), then the JPEG bytes to the end of the frame
 *
 * The first eight bytes are ComfyUI's preview header, so its clients can read the type and format.
 */
import sharp from "sharp";
import type { RgbImage } from "../../nodes/socket-types.ts";

export const PREVIEW_EVENT = 1;
export const PREVIEW_FORMAT_JPEG = 1;

export async function encodePreviewFrame(nodeId: string, image: RgbImage): Promise<Buffer> {
  const jpeg = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .jpeg({ quality: 75 })
    .toBuffer();
  const id = Buffer.from(nodeId, "utf8");
  const header = Buffer.alloc(10);
  header.writeUInt32BE(PREVIEW_EVENT, 0);
  header.writeUInt32BE(PREVIEW_FORMAT_JPEG, 4);
  header.writeUInt16BE(id.length, 8);
  return Buffer.concat([header, id, jpeg]);
}

export function decodePreviewFrame(frame: Uint8Array): { event: number; format: number; nodeId: string; jpeg: Buffer } {
  const buffer = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  const length = buffer.readUInt16BE(8);
  return {
    event: buffer.readUInt32BE(0),
    format: buffer.readUInt32BE(4),
    nodeId: buffer.subarray(10, 10 + length).toString("utf8"),
    jpeg: buffer.subarray(10 + length),
  };
}
