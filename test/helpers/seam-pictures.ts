/**
 * Test pictures for the seam measure, and model-like results for them: the known area redrawn with a colour
 * cast (what a VAE or a model's drift does) and new content inside the mask (the picture mirrored), so the seam
 * holds both a cast and a change of content, as an inpainting does.
 */
import path from "node:path";
import sharp from "sharp";
import type { Mask, RgbImage } from "../../nodes/socket-types.ts";

export interface SeamCase {
  readonly name: string;
  readonly picture: RgbImage;
  readonly mask: Mask;
}

const EXAMPLES = path.join(import.meta.dirname, "..", "..", "workflows", "examples");

export async function seamCases(): Promise<SeamCase[]> {
  const room = await sharp(path.join(EXAMPLES, "room.png")).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const roomMask = await sharp(path.join(EXAMPLES, "room-mask.png")).removeAlpha().toColourspace("b-w").raw().toBuffer({ resolveWithObject: true });
  const size = 256;
  return [
    {
      name: "room (workflows/examples)",
      picture: { width: room.info.width, height: room.info.height, data: new Uint8Array(room.data) },
      mask: { width: roomMask.info.width, height: roomMask.info.height, data: new Uint8Array(roomMask.data) },
    },
    { name: "sky gradient, disc", picture: generated(size, skyPixel), mask: maskOf(size, (x, y) => Math.hypot(x - 131, y - 117) < 61) },
    { name: "striped texture, box", picture: generated(size, texturePixel), mask: maskOf(size, (x, y) => x >= 77 && x < 181 && y >= 59 && y < 203) },
  ];
}

function generated(size: number, pixel: (x: number, y: number) => [number, number, number]): RgbImage {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) data.set(pixel(x, y).map((v) => Math.max(0, Math.min(255, Math.round(v)))), (y * size + x) * 3);
  return { width: size, height: size, data };
}

function skyPixel(x: number, y: number): [number, number, number] {
  return [90 + 0.4 * y + 10 * Math.sin(x / 40), 140 + 0.3 * y, 230 - 0.2 * y + 8 * Math.cos(x / 31)];
}

function texturePixel(x: number, y: number): [number, number, number] {
  const stripe = 40 * Math.sin((x + 0.5 * y) / 6);
  const grain = ((x * 73 + y * 151) % 17) - 8;
  return [150 + stripe + grain, 110 + 0.6 * stripe + grain, 80 + 0.3 * stripe + grain];
}

function maskOf(size: number, inside: (x: number, y: number) => boolean): Mask {
  const data = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) data[y * size + x] = inside(x, y) ? 255 : 0;
  return { width: size, height: size, data };
}

/** A warm, washed-out cast: what a drifting model adds to everything it draws. */
export function warmCast([r, g, b]: readonly number[]): [number, number, number] {
  return [0.85 * r + 40, 0.95 * g + 14, 0.8 * b + 6];
}

/** A small, cast-free wobble (±3 grey levels), as a VAE round trip leaves. */
export function noCast([r, g, b]: readonly number[], index: number): [number, number, number] {
  const wobble = ((index * 2654435761) >>> 28) % 7 - 3;
  return [r + wobble, g - wobble, b + wobble];
}

/** The "model's result": the known area redrawn through `tone`, the masked area new content (mirrored) through it too. */
export function modelLikeResult(picture: RgbImage, mask: Mask, tone: (rgb: readonly number[], index: number) => [number, number, number]): RgbImage {
  const { width, height } = picture;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      const source = mask.data[p] >= 128 ? y * width + (width - 1 - x) : p;
      const rgb = tone(Array.from(picture.data.subarray(source * 3, source * 3 + 3)), p);
      data.set(rgb.map((v) => Math.max(0, Math.min(255, Math.round(v)))), p * 3);
    }
  }
  return { width, height, data };
}
