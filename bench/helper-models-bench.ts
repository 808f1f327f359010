/**
 * Click-to-select and learned fill, end to end through a server on 127.0.0.1 as the mask painter uses them:
 * POST /api/segment on a 1024×768 picture in the input folder, the first click (model load + the picture's
 * embedding) and then 20 clicks that only run the decoder (median and worst, HTTP round trip and PNG included);
 * and LearnedFill on a 2048×1536 picture with a 200×150 hole (crop, resize, model, paste back), median of 5.
 *
 * On the miniatures by default (test/fixtures/make-tiny-helper-models.ts). With real models in
 * $MASKFLOW_MODELS_DIR (or ./models)/mobile-sam and /lama, the same rows are measured on them too.
 * Goal: a click after the first answers in well under a second (< 300 ms) on the miniature.
 */
import { cp, mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { LearnedFillEngine } from "../server/engines/fill/learned-fill-engine.ts";
import { SegmentEngine } from "../server/engines/segment/segment-engine.ts";
import { startServer } from "../server/maskflow-server.ts";
import { resolveModelsDir } from "../server/models/models-folder.ts";
import { RecordingLog } from "../test/helpers/recording-log.ts";
import { ensureTinyHelperModels } from "../test/fixtures/make-tiny-helper-models.ts";

const CLICKS = 20;
const CLICK_GOAL_MS = 300;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** A 1024×768 picture with a few coloured objects on a gradient. */
async function scenePng(width: number, height: number): Promise<Buffer> {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inObject = (x - width * 0.4) ** 2 + (y - height * 0.5) ** 2 < (height * 0.2) ** 2;
      const inBox = x > width * 0.7 && x < width * 0.9 && y > height * 0.2 && y < height * 0.45;
      data.set(inObject ? [210, 50, 40] : inBox ? [40, 190, 70] : [Math.round((x / width) * 60), 70, Math.round(150 + (y / height) * 80)], (y * width + x) * 3);
    }
  }
  return sharp(data, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

async function benchSegment(label: string, modelsDir: string): Promise<Record<string, number | string>> {
  const segment = new SegmentEngine({ modelsDir });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-bench-segment-"));
  const server = await startServer({ host: "127.0.0.1", port: 0, dataDir, log: new RecordingLog(), engines: { segment } });
  try {
    await mkdir(server.folders.input, { recursive: true });
    await writeFile(path.join(server.folders.input, "scene.png"), await scenePng(1024, 768));
    const click = async (x: number, y: number, positive = true) => {
      const started = performance.now();
      const response = await fetch(`${server.url}/api/segment`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ image: "scene.png", points: [{ x, y, positive }] }),
      });
      await response.arrayBuffer();
      if (!response.ok) throw new Error(`segment: HTTP ${response.status}`);
      return { ms: performance.now() - started, embedding: response.headers.get("x-maskflow-embedding") };
    };
    const first = await click(410, 384);
    const times: number[] = [];
    for (let i = 0; i < CLICKS; i++) {
      const answer = await click(300 + ((i * 37) % 400), 250 + ((i * 53) % 300), i % 3 !== 0);
      if (answer.embedding !== "cached") throw new Error("a later click recomputed the embedding");
      times.push(answer.ms);
    }
    const later = median(times);
    return {
      [`segment ${label}: first click ms (load + embedding)`]: first.ms,
      [`segment ${label}: later click median ms`]: later,
      [`segment ${label}: later click worst ms`]: Math.max(...times),
      [`segment ${label}: goal later click < ${CLICK_GOAL_MS} ms`]: later < CLICK_GOAL_MS ? "PASS" : "FAIL",
    };
  } finally {
    await server.close();
    await segment.release();
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function benchFill(label: string, modelsDir: string): Promise<Record<string, number | string>> {
  const engine = new LearnedFillEngine({ modelsDir });
  try {
    const width = 2048;
    const height = 1536;
    const { data } = await sharp(await scenePng(width, height)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const picture = { width, height, data: new Uint8Array(data) };
    const mask = { width, height, data: new Uint8Array(width * height) };
    for (let y = 700; y < 850; y++) mask.data.fill(255, y * width + 800, y * width + 1000);
    const times: number[] = [];
    const modelTimes: number[] = [];
    await engine.fill({ picture, mask });
    for (let run = 0; run < 5; run++) {
      const started = performance.now();
      const result = await engine.fill({ picture, mask });
      times.push(performance.now() - started);
      modelTimes.push(result.modelMs);
    }
    return {
      [`learned fill ${label}: 2048×1536, 200×150 hole, ms`]: median(times),
      [`learned fill ${label}: of which the model ms`]: median(modelTimes),
    };
  } finally {
    await engine.release();
  }
}

const exists = (dir: string) => stat(dir).then((info) => info.isDirectory(), () => false);

export async function benchHelperModels(): Promise<Record<string, number | string>> {
  const tiny = await ensureTinyHelperModels();
  const miniatures = await mkdtemp(path.join(os.tmpdir(), "maskflow-bench-models-"));
  try {
    await cp(tiny.samAcly, path.join(miniatures, "mobile-sam"), { recursive: true });
    await cp(tiny.lama, path.join(miniatures, "lama"), { recursive: true });
    const results = { ...(await benchSegment("miniature", miniatures)), ...(await benchFill("miniature", miniatures)) };
    const real = resolveModelsDir(undefined);
    if (await exists(path.join(real, "mobile-sam"))) Object.assign(results, await benchSegment("mobile-sam", real));
    if (await exists(path.join(real, "lama"))) Object.assign(results, await benchFill("lama", real));
    return results;
  } finally {
    await rm(miniatures, { recursive: true, force: true });
  }
}
