/**
 * Heavy node work against a real server while a second client polls GET /api/system: a big
 * ClassicalFill, a SaveImage whose workflow carries the largest literals the server accepts, and a chain of mask and image
 * nodes on a 4096² picture. For each, the event loop's delay over the job (perf_hooks
 * monitorEventLoopDelay, p99 and max) and the poller's worst answer time, in milliseconds.
 * Goal: worst poll under 100 ms. Run one section: `npm run bench responsiveness`.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import sharp from "sharp";
import { OnnxEngine } from "../server/engines/onnx/onnx-engine.ts";
import { startServer } from "../server/maskflow-server.ts";
import { writeMidModel } from "./make-mid-model.ts";

const quietLog = { info() {}, warn() {}, error() {} };
/** Pause between the poller's requests; each waits for the answer before the next. */
const POLL_GAP_MS = 5;

type Workflow = { format: string; version: number; nodes: { id: string; type: string; inputs: Record<string, unknown> }[] };

function workflow(nodes: Workflow["nodes"]): Workflow {
  return { format: "maskflow-workflow", version: 1, nodes };
}

/** Value noise (hashed per pixel): nothing for a fill to shortcut on, and a PNG that stays large. */
function noisePicture(side: number): Uint8Array {
  const data = new Uint8Array(side * side * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.imul(i, 2654435761) >>> 24;
  return data;
}

function squareHole(side: number, from: number, to: number): Uint8Array {
  const data = new Uint8Array(side * side);
  for (let y = from; y < to; y++) data.fill(255, y * side + from, y * side + to);
  return data;
}

async function writePng(file: string, data: Uint8Array, side: number, channels: 1 | 3): Promise<void> {
  await writeFile(file, await sharp(data, { raw: { width: side, height: side, channels } }).png({ compressionLevel: 1 }).toBuffer());
}

const SCENARIOS: Record<string, Workflow> = {
  // A 512² hole in a 1536² picture: several seconds of patch search.
  "fill 1536² patch": workflow([
    { id: "1", type: "LoadImage", inputs: { image: "fill.png" } },
    { id: "2", type: "LoadMask", inputs: { image: "fill-hole.png", channel: "red" } },
    { id: "3", type: "ClassicalFill", inputs: { image: ["1", "image"], mask: ["2", "mask"], method: "patch", radius: 5 } },
    { id: "4", type: "PreviewImage", inputs: { images: ["3", "image"] } },
  ]),
  "fill 1536² telea": workflow([
    { id: "1", type: "LoadImage", inputs: { image: "fill.png" } },
    { id: "2", type: "LoadMask", inputs: { image: "fill-hole.png", channel: "red" } },
    { id: "3", type: "ClassicalFill", inputs: { image: ["1", "image"], mask: ["2", "mask"], method: "telea", radius: 5 } },
    { id: "4", type: "PreviewImage", inputs: { images: ["3", "image"] } },
  ]),
  // The server takes at most 1,000,000 characters per value and 4,000,000 per workflow, so three values of a
  // million "é": each becomes \u00e9 in the tEXt chunk, 18 MB to escape and checksum. The literals sit on nodes
  // the output does not need: only SaveImage's embedding touches them.
  "save 3 M-character literals": workflow([
    { id: "1", type: "LoadImage", inputs: { image: "small.png" } },
    { id: "2", type: "SaveImage", inputs: { images: ["1", "image"], filename_prefix: "bench" } },
    ...["3", "4", "5"].map((id) => ({ id, type: "String", inputs: { value: "é".repeat(1_000_000) } })),
  ]),
  "mask ops 4096²": workflow([
    { id: "1", type: "LoadImage", inputs: { image: "big.png" } },
    { id: "2", type: "LoadMask", inputs: { image: "big-hole.png", channel: "red" } },
    { id: "3", type: "GrowMask", inputs: { mask: ["2", "mask"], pixels: 16 } },
    { id: "4", type: "FeatherMask", inputs: { mask: ["3", "mask"], radius: 8 } },
    { id: "5", type: "ThresholdMask", inputs: { mask: ["4", "mask"], threshold: 100 } },
    { id: "6", type: "InvertMask", inputs: { mask: ["5", "mask"] } },
    { id: "7", type: "MaskToImage", inputs: { mask: ["6", "mask"] } },
    { id: "8", type: "Blend", inputs: { a: ["1", "image"], b: ["7", "image"], factor: 0.5, mode: "multiply" } },
    { id: "9", type: "PadImage", inputs: { image: ["8", "image"], left: 0, top: 0, right: 256, bottom: 256, feather: 64, multiple_of_8: false } },
    { id: "10", type: "PreviewImage", inputs: { images: ["9", "image"] } },
    { id: "11", type: "CropToMask", inputs: { image: ["1", "image"], mask: ["3", "mask"], padding: 32, context: 1, shape: "square", size: 512 } },
    { id: "12", type: "Stitch", inputs: { original: ["8", "image"], inpainted: ["11", "image"], mask: ["4", "mask"], crop: ["11", "crop"], feather: 8 } },
    { id: "13", type: "PreviewImage", inputs: { images: ["12", "image"] } },
  ]),
  // The mid-size model (bench/make-mid-model.ts): its four sessions open in the job, then ten guided steps of
  // about 100 ms of UNet each. onnxruntime-node opens and runs sessions synchronously on its calling thread,
  // which is why they live on their own thread (server/engines/onnx/onnx-thread.ts).
  "inpaint, mid-size model, load + 10 steps": workflow([
    { id: "1", type: "LoadImage", inputs: { image: "small.png" } },
    { id: "2", type: "LoadMask", inputs: { image: "small-hole.png", channel: "red" } },
    { id: "3", type: "Prompt", inputs: { positive: "a bench in a park", negative: "" } },
    { id: "4", type: "Scheduler", inputs: { scheduler: "DDIM", steps: 10, guidance: 7.5, strength: 1, seed: "1" } },
    {
      id: "5",
      type: "Inpaint",
      inputs: { image: ["1", "image"], mask: ["2", "mask"], prompt: ["3", "prompt"], scheduler: ["4", "scheduler"], backend: "local", samples: 1, width: 512, height: 512 },
    },
    { id: "6", type: "PreviewImage", inputs: { images: ["5", "images"] } },
  ]),
};

interface PollResult {
  worst: number;
  answers: number;
  /** Requests that got no answer (a connection reset while the server was stuck); they count in worst. */
  failed: number;
}

/**
 * The second client, in its own process so its clock runs while the server's loop is stuck: asks
 * GET /api/system back to back until its stdin closes, then prints the slowest answer and the counts.
 */
const POLLER_SOURCE = `
  const url = process.argv[1];
  const result = { worst: 0, answers: 0, failed: 0 };
  let running = true;
  process.stdin.on("end", () => { running = false; });
  process.stdin.resume();
  while (running) {
    const started = performance.now();
    try {
      await (await fetch(url)).arrayBuffer();
      if (result.answers++ === 0) process.stdout.write("ready\\n");
    } catch {
      result.failed++;
    }
    result.worst = Math.max(result.worst, performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, ${POLL_GAP_MS}));
  }
  process.stdout.write(JSON.stringify(result) + "\\n");
`;

/** Starts the poller and resolves once it has had its first answer. */
async function startPoller(url: string): Promise<{ stop(): Promise<PollResult> }> {
  const child = spawn(process.execPath, ["--input-type=module", "-e", POLLER_SOURCE, `${url}/api/system`], { stdio: ["pipe", "pipe", "inherit"] });
  let output = "";
  let markReady = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
    if (output.includes("\n")) markReady();
  });
  const exited = once(child, "exit");
  await Promise.race([ready, exited]);
  return {
    async stop() {
      child.stdin.end();
      await exited;
      return JSON.parse(output.trim().split("\n").at(-1) ?? "{}") as PollResult;
    },
  };
}

export async function benchResponsiveness(): Promise<Record<string, number | string>> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-bench-responsive-"));
  const local = new OnnxEngine({ defaultModelDir: await writeMidModel() });
  const server = await startServer({ host: "127.0.0.1", port: 0, dataDir, log: quietLog, maxUploadBytes: 64 * 1024 * 1024, engines: { local }, releaseModels: () => local.release() });
  const results: Record<string, number | string> = {};
  try {
    await writePng(path.join(server.folders.input, "fill.png"), noisePicture(1536), 1536, 3);
    await writePng(path.join(server.folders.input, "fill-hole.png"), squareHole(1536, 512, 1024), 1536, 1);
    await writePng(path.join(server.folders.input, "small.png"), noisePicture(512), 512, 3);
    await writePng(path.join(server.folders.input, "small-hole.png"), squareHole(512, 128, 384), 512, 1);
    await writePng(path.join(server.folders.input, "big.png"), noisePicture(4096), 4096, 3);
    await writePng(path.join(server.folders.input, "big-hole.png"), squareHole(4096, 1536, 2560), 4096, 1);

    for (const [name, doc] of Object.entries(SCENARIOS)) {
      const delay = monitorEventLoopDelay({ resolution: 5 });
      const poller = await startPoller(server.url);
      delay.enable();
      const started = performance.now();
      let entry;
      let polled: PollResult;
      try {
        const response = await fetch(`${server.url}/api/prompt`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ workflow: doc }),
        });
        const queued = (await response.json()) as { id?: string };
        if (!queued.id) throw new Error(`${name}: the server refused the workflow: ${JSON.stringify(queued).slice(0, 500)}`);
        entry = await server.queue.waitFor(queued.id);
      } finally {
        delay.disable();
        polled = await poller.stop();
      }
      const jobMs = performance.now() - started;
      if (entry.status !== "success") throw new Error(`${name}: the job ended ${entry.status}: ${JSON.stringify(entry.error)}`);
      results[`responsive ${name}: job ms`] = jobMs;
      results[`responsive ${name}: loop delay p99 ms`] = delay.percentile(99) / 1e6;
      results[`responsive ${name}: loop delay max ms`] = delay.max / 1e6;
      results[`responsive ${name}: worst poll ms`] = polled.worst;
      results[`responsive ${name}: polls answered / failed`] = `${polled.answers} / ${polled.failed}`;
    }
  } finally {
    await server.close();
    await local.release();
    await rm(dataDir, { recursive: true, force: true });
  }
  return results;
}
