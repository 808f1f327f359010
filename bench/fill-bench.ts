/**
 * ClassicalFill: both methods on the shipped example (room.png, its mask grown by 4 px, as
 * remove-object.json runs it) and on a 512×512 picture with a 10% hole (a disc of radius 91).
 * Median of 5 runs after one warm-up, in milliseconds.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { exemplarInpaint } from "../nodes/fill/exemplar-inpaint.ts";
import { teleaInpaint } from "../nodes/fill/telea-inpaint.ts";
import { dilateMask } from "../nodes/mask/square-morphology.ts";
import type { Mask, RgbImage } from "../nodes/socket-types.ts";

const EXAMPLES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../workflows/examples");
const RUNS = 5;

function median(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function timeIt(fill: () => unknown): number {
  fill();
  const times: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const started = performance.now();
    fill();
    times.push(performance.now() - started);
  }
  return median(times);
}

/** A picture with a ramp, a sine and a soft blob (as test/telea-fill.test.ts) and a 10% disc hole. */
function discCase(): { image: RgbImage; mask: Mask } {
  const size = 512;
  const data = new Uint8Array(size * size * 3);
  const mask = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      data.set(
        [
          Math.round(30 + 0.25 * x + 0.15 * y),
          Math.round(128 + 80 * Math.sin(x / 60) * Math.cos(y / 80)),
          Math.round(60 + 120 * Math.exp(-((x - 250) ** 2 + (y - 230) ** 2) / 40000)),
        ],
        (y * size + x) * 3,
      );
      if ((x - 256) ** 2 + (y - 256) ** 2 < 91 * 91) mask[y * size + x] = 255;
    }
  }
  return { image: { width: size, height: size, data }, mask: { width: size, height: size, data: mask } };
}

async function exampleCase(): Promise<{ image: RgbImage; mask: Mask }> {
  const picture = await sharp(path.join(EXAMPLES, "room.png")).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const mask = await sharp(path.join(EXAMPLES, "room-mask.png")).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  const { width, height } = picture.info;
  return {
    image: { width, height, data: new Uint8Array(picture.data) },
    mask: dilateMask({ width, height, data: new Uint8Array(mask.data) }, 4),
  };
}

export async function benchFill(): Promise<Record<string, number>> {
  const cases = { "room example": await exampleCase(), "512² 10% hole": discCase() };
  const results: Record<string, number> = {};
  for (const [name, { image, mask }] of Object.entries(cases)) {
    results[`fill ${name}, patch (ms)`] = timeIt(() => exemplarInpaint(image, mask, 5));
    results[`fill ${name}, telea (ms)`] = timeIt(() => teleaInpaint(image, mask, 5));
  }
  return results;
}
