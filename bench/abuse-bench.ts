/**
 * The attacks of issue 12, one after another, against a real server started in this process (so the
 * event loop that is measured is the server's), while a second client in its own process polls
 * GET /api/system every 20 ms. For each attack: the answer, the event loop's delay (perf_hooks
 * monitorEventLoopDelay, p99 and max), the poller's worst latency, and RSS before and after (after a
 * full GC). Goals: worst latency under 100 ms during every attack, RSS back within 20 % of where it
 * started. Rows that miss a goal say FAIL; nothing is hidden. `npm run bench abuse`.
 */
import { once } from "node:events";
import { readdir, stat } from "node:fs/promises";
import type { Socket } from "node:net";
import path from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import v8 from "node:v8";
import vm from "node:vm";
import zlib from "node:zlib";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import sharp from "sharp";
import { WebSocket } from "ws";
import { OnnxEngine } from "../server/engines/onnx/onnx-engine.ts";
import { startServer, type RunningServer } from "../server/maskflow-server.ts";
import { ensureTinyModels } from "../test/fixtures/make-tiny-models.ts";
import { startSystemPoller } from "./system-poller.ts";

export const GOAL_WORST_POLL_MS = 100;
/** RSS after an attack may be at most this much above RSS before it. */
export const GOAL_RSS_GROWTH = 0.2;
/** An attack still going after this is stopped and reported as timed out. */
const ATTACK_LIMIT_MS = 120_000;
/** Measuring goes on this long after the answer. */
const SETTLE_MS = 100;

const quietLog = { info() {}, warn() {}, error() {} };

type Node = { id: string; type: string; inputs: Record<string, unknown> };
const workflow = (nodes: Node[]) => ({ format: "maskflow-workflow", version: 1, nodes });

interface Attack {
  readonly name: string;
  /** Builds what it sends before anything is measured, so the bench's own payloads do not count as the server's memory. */
  prepare(): Promise<unknown> | unknown;
  /** Makes the attack and answers what the server said (statuses, a job's ending). */
  run(payload: unknown): Promise<string>;
}

interface Row {
  readonly attack: string;
  readonly answer: string;
  readonly loopP99Ms: number;
  readonly loopMaxMs: number;
  readonly worstPollMs: number;
  readonly rssBeforeMb: number;
  readonly rssAfterMb: number;
  readonly verdict: string;
}

/** A full collection, with --expose-gc or without it (the flag can be set at run time and gc fetched from a fresh context). */
function fullGc(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
}

const rssMb = () => process.memoryUsage().rss / (1024 * 1024);

/** Six words of 64,000 random letters: 384 KB that BPE splits very slowly if it ever sees it whole. */
function longRandomWords(): string {
  const words: string[] = [];
  for (let w = 0; w < 6; w++) {
    const letters = Buffer.alloc(64_000);
    for (let i = 0; i < letters.length; i++) letters[i] = 97 + Math.floor(Math.random() * 26);
    words.push(letters.toString("latin1"));
  }
  return words.join(" ");
}

/** A valid PNG that declares 16383 × 16383 RGB (805 MB of pixels) in under 1 MB: every row is zeros. */
async function pixelBomb(side = 16383): Promise<Buffer> {
  const chunk = (type: string, data: Buffer) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, "latin1");
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr[8] = 8; // bits per channel
  ihdr[9] = 2; // RGB
  const deflate = zlib.createDeflate({ level: 9 });
  const compressed: Buffer[] = [];
  deflate.on("data", (data: Buffer) => compressed.push(data));
  const row = Buffer.alloc(1 + side * 3); // filter byte 0, then black pixels
  for (let y = 0; y < side; y++) if (!deflate.write(row)) await once(deflate, "drain");
  deflate.end();
  await once(deflate, "end");
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk("IHDR", ihdr), chunk("IDAT", Buffer.concat(compressed)), chunk("IEND", Buffer.alloc(0))]);
}

/**
 * Bodies are encoded before measuring: the attacker shares the server's process (its event loop is the one
 * measured), so it must not charge the server for turning a 20 MB string into bytes.
 */
const encoded = (value: unknown): Uint8Array<ArrayBuffer> => new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));

async function postJson(server: RunningServer, route: string, body: Uint8Array<ArrayBuffer>): Promise<Response> {
  return fetch(server.url + route, { method: "POST", headers: { "content-type": "application/json" }, body, signal: AbortSignal.timeout(ATTACK_LIMIT_MS) });
}

/** POST /api/prompt; when accepted, waits for the job and says how it ended. */
async function promptAndWait(server: RunningServer, body: Uint8Array<ArrayBuffer>): Promise<string> {
  const response = await postJson(server, "/api/prompt", body);
  const answer = (await response.json()) as { id?: string };
  if (response.status !== 200 || !answer.id) return String(response.status);
  const entry = await server.queue.waitFor(answer.id);
  return `200, job ${entry.status}`;
}

function segmindBody(image: string, mask: string, prompt: string, steps = 20): Uint8Array<ArrayBuffer> {
  return encoded({ image, mask, prompt, samples: 1, scheduler: "DDIM", num_inference_steps: steps, guidance_scale: 7.5, strength: 1, seed: 1, img_width: 512, img_height: 512 });
}

function inpaintWorkflow(prompt: string, options: { steps?: number; samples?: number } = {}) {
  return workflow([
    { id: "1", type: "LoadImage", inputs: { image: "picture.png" } },
    { id: "2", type: "LoadMask", inputs: { image: "mask.png", channel: "luminance" } },
    { id: "3", type: "Prompt", inputs: { positive: prompt, negative: "" } },
    { id: "4", type: "Scheduler", inputs: { scheduler: "DDIM", steps: options.steps ?? 20, guidance: 7.5, strength: 1, seed: "1" } },
    {
      id: "5",
      type: "Inpaint",
      inputs: { image: ["1", "image"], mask: ["2", "mask"], prompt: ["3", "prompt"], scheduler: ["4", "scheduler"], backend: "local", samples: options.samples ?? 1, width: 512, height: 512 },
    },
    { id: "6", type: "PreviewImage", inputs: { images: ["5", "images"] } },
  ]);
}

/** LoadMask, then 9,988 InvertMasks each on the one before, then MaskToImage and PreviewImage: 9,990 nodes. */
function chain(order: "forward" | "reverse") {
  const nodes: Node[] = [{ id: "1", type: "LoadMask", inputs: { image: "mask.png", channel: "luminance" } }];
  for (let i = 2; i <= 9988; i++) nodes.push({ id: String(i), type: "InvertMask", inputs: { mask: [String(i - 1), "mask"] } });
  nodes.push({ id: "9989", type: "MaskToImage", inputs: { mask: ["9988", "mask"] } });
  nodes.push({ id: "9990", type: "PreviewImage", inputs: { images: ["9989", "image"] } });
  return workflow(order === "forward" ? nodes : nodes.reverse());
}

function attacks(server: RunningServer, pictures: { picture: string; mask: string; bomb: Buffer }): Attack[] {
  const words = longRandomWords();
  const xs = "x".repeat(1_000_000);
  return [
    {
      name: "384 KB prompt of long words, /api/prompt",
      prepare: () => encoded({ workflow: inpaintWorkflow(words) }),
      run: (body) => promptAndWait(server, body as Uint8Array<ArrayBuffer>),
    },
    {
      name: '"x" × 1,000,000 prompt, /api/prompt',
      prepare: () => encoded({ workflow: inpaintWorkflow(xs) }),
      run: (body) => promptAndWait(server, body as Uint8Array<ArrayBuffer>),
    },
    {
      name: "384 KB prompt of long words, Segmind",
      prepare: () => segmindBody(pictures.picture, pictures.mask, words),
      run: async (body) => String((await postJson(server, "/v1/sd1.5-inpainting", body as Uint8Array<ArrayBuffer>)).status),
    },
    {
      name: '"x" × 1,000,000 prompt, Segmind',
      prepare: () => segmindBody(pictures.picture, pictures.mask, xs),
      run: async (body) => String((await postJson(server, "/v1/sd1.5-inpainting", body as Uint8Array<ArrayBuffer>)).status),
    },
    {
      name: "1 MB PNG declaring 16383², upload",
      prepare: () => {
        const form = new FormData();
        form.append("image", new Blob([new Uint8Array(pictures.bomb)], { type: "image/png" }), "bomb.png");
        return form;
      },
      run: async (form) =>
        String((await fetch(`${server.url}/api/upload`, { method: "POST", body: form as FormData, signal: AbortSignal.timeout(ATTACK_LIMIT_MS) })).status),
    },
    {
      name: "1 MB PNG declaring 16383², Segmind",
      prepare: () => segmindBody(pictures.bomb.toString("base64"), pictures.mask, "a bench"),
      run: async (body) => String((await postJson(server, "/v1/sd1.5-inpainting", body as Uint8Array<ArrayBuffer>)).status),
    },
    {
      name: "9,990-node chain, listed in order",
      prepare: () => encoded({ workflow: chain("forward") }),
      run: (body) => promptAndWait(server, body as Uint8Array<ArrayBuffer>),
    },
    {
      name: "9,990-node chain, listed backwards",
      prepare: () => encoded({ workflow: chain("reverse") }),
      run: (body) => promptAndWait(server, body as Uint8Array<ArrayBuffer>),
    },
    {
      name: "one node with 1,000,000 unknown inputs",
      prepare: () => {
        const inputs: Record<string, unknown> = { image: "picture.png" };
        for (let i = 0; i < 1_000_000; i++) inputs[`u${i}`] = 0;
        return encoded({ workflow: workflow([{ id: "1", type: "LoadImage", inputs }, { id: "2", type: "PreviewImage", inputs: { images: ["1", "image"] } }]) });
      },
      run: async (body) => {
        const response = await postJson(server, "/api/prompt", body as Uint8Array<ArrayBuffer>);
        const text = await response.text();
        return `${response.status} (${(text.length / 1024).toFixed(0)} KB answer)`;
      },
    },
    {
      name: "SaveImage with a 20 MB literal",
      prepare: () =>
        encoded({
          workflow: workflow([
            { id: "1", type: "LoadImage", inputs: { image: "picture.png" } },
            { id: "2", type: "SaveImage", inputs: { images: ["1", "image"], filename_prefix: "abuse" } },
            { id: "3", type: "String", inputs: { value: "x".repeat(20 * 1024 * 1024) } },
          ]),
        }),
      run: (body) => promptAndWait(server, body as Uint8Array<ArrayBuffer>),
    },
    {
      name: "10 jobs with 3 × 1,000,000-character literals into history",
      prepare: () =>
        Array.from({ length: 10 }, (_, job) =>
          encoded({
            workflow: workflow([
              { id: "1", type: "LoadImage", inputs: { image: "picture.png" } },
              { id: "2", type: "PreviewImage", inputs: { images: ["1", "image"] } },
              ...["3", "4", "5"].map((id) => ({ id, type: "String", inputs: { value: `${job}${id}`.padEnd(1_000_000, "é") } })),
            ]),
          }),
        ),
      run: async (bodies) => {
        const answers: string[] = [];
        for (const body of bodies as Uint8Array<ArrayBuffer>[]) answers.push(await promptAndWait(server, body));
        return summarize(answers);
      },
    },
    {
      name: "Segmind endpoint eight times",
      prepare: () => Array.from({ length: 8 }, (_, i) => segmindBody(pictures.picture, pictures.mask, `a bench, take ${i}`)),
      run: async (bodies) => {
        const answers: string[] = [];
        for (const body of bodies as Uint8Array<ArrayBuffer>[]) answers.push(String((await postJson(server, "/v1/sd1.5-inpainting", body)).status));
        const folder = path.join(server.folders.input, "segmind");
        const left = await readdir(folder).catch(() => [] as string[]);
        const bytes = (await Promise.all(left.map(async (name) => (await stat(path.join(folder, name))).size))).reduce((a, b) => a + b, 0);
        return `${summarize(answers)}; input/segmind: ${left.length} files, ${(bytes / 1024 / 1024).toFixed(1)} MB`;
      },
    },
    {
      name: "WebSocket client that never reads, 4 × 100-step job",
      prepare: () => encoded({ workflow: inpaintWorkflow("a bench", { steps: 100, samples: 4 }), clientId: "abuse-stalled" }),
      run: async (body) => {
        // The server's end of the stalled socket: what it holds unsent for that client.
        let serverEnd: Socket | undefined;
        const onUpgrade = (request: { url?: string }, socket: Socket) => {
          if (request.url?.includes("clientId=abuse-stalled")) serverEnd = socket;
        };
        server.httpServer.on("upgrade", onUpgrade);
        const client = new WebSocket(`${server.url.replace(/^http/, "ws")}/ws?clientId=abuse-stalled`);
        let heldMost = 0;
        const sampler = setInterval(() => (heldMost = Math.max(heldMost, serverEnd?.writableLength ?? 0)), 5);
        try {
          await once(client, "message");
          client.pause();
          const answer = await promptAndWait(server, body as Uint8Array<ArrayBuffer>);
          return `${answer}; held for it at most ${(heldMost / 1024).toFixed(0)} KB; socket ${serverEnd?.destroyed ? "closed by the server" : "open"}`;
        } finally {
          clearInterval(sampler);
          server.httpServer.off("upgrade", onUpgrade);
          client.terminate();
        }
      },
    },
  ];
}

/** "200 ×7, 429 ×1". */
function summarize(answers: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const answer of answers) counts.set(answer, (counts.get(answer) ?? 0) + 1);
  return [...counts].map(([answer, count]) => (count > 1 ? `${answer} ×${count}` : answer)).join(", ");
}

async function measure(server: RunningServer, attack: Attack, gc: () => void): Promise<Row> {
  const payload = await attack.prepare();
  gc();
  const rssBeforeMb = rssMb();
  // Over the poller's whole window, so an attack shorter than the resolution still has samples.
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  const poller = await startSystemPoller(server.url);
  let answer: string;
  let timer: NodeJS.Timeout | undefined;
  try {
    answer = await Promise.race([
      attack.run(payload),
      new Promise<string>((resolve) => (timer = setTimeout(() => resolve(`timed out after ${ATTACK_LIMIT_MS / 1000} s`), ATTACK_LIMIT_MS))),
    ]);
  } catch (error) {
    answer = `failed: ${(error as Error).message}`;
  } finally {
    clearTimeout(timer);
  }
  // A few more polls: work the attack left behind (a history write, a removal) is part of it.
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  const polled = await poller.stop();
  delay.disable();
  if (answer.startsWith("timed out")) {
    // Whatever it left running must not run into the next attack's figures.
    server.queue.clearPending();
    server.queue.interrupt();
  }
  gc();
  const rssAfterMb = rssMb();
  const problems: string[] = [];
  if (polled.failure) problems.push(`poller failed: ${polled.failure}`);
  if (!(polled.worstMs < GOAL_WORST_POLL_MS)) problems.push(`worst poll ${polled.worstMs.toFixed(0)} ms`);
  if (rssAfterMb > rssBeforeMb * (1 + GOAL_RSS_GROWTH)) problems.push(`RSS +${((rssAfterMb / rssBeforeMb - 1) * 100).toFixed(0)} %`);
  return {
    attack: attack.name,
    answer,
    loopP99Ms: delay.percentile(99) / 1e6,
    loopMaxMs: delay.max / 1e6,
    worstPollMs: polled.worstMs,
    rssBeforeMb,
    rssAfterMb,
    verdict: problems.length ? `FAIL (${problems.join("; ")})` : "PASS",
  };
}

function printTable(rows: readonly Row[]): void {
  const header = ["attack", "answer", "loop p99 ms", "loop max ms", "worst poll ms", "RSS MB before → after", "verdict"];
  const lines = rows.map((row) => [
    row.attack,
    row.answer,
    row.loopP99Ms.toFixed(1),
    row.loopMaxMs.toFixed(1),
    row.worstPollMs.toFixed(1),
    `${row.rssBeforeMb.toFixed(0)} → ${row.rssAfterMb.toFixed(0)}`,
    row.verdict,
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column].length)));
  const format = (cells: readonly string[]) => cells.map((cell, column) => cell.padEnd(widths[column])).join("  ").trimEnd();
  process.stderr.write(`abuse: goals: worst poll under ${GOAL_WORST_POLL_MS} ms during every attack; RSS after within ${GOAL_RSS_GROWTH * 100} % of before\n`);
  process.stderr.write(`${format(header)}\n${lines.map(format).join("\n")}\n`);
}

export async function benchAbuse(): Promise<Record<string, number | string>> {
  const gc = fullGc();
  const tiny = await ensureTinyModels();
  const engine = new OnnxEngine({ defaultModelDir: tiny.fp32, threads: 1 });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-bench-abuse-"));
  const server = await startServer({ host: "127.0.0.1", port: 0, dataDir, log: quietLog, engines: { local: engine }, releaseModels: () => engine.release() });
  const results: Record<string, number | string> = {};
  const rows: Row[] = [];
  try {
    const picture = await sharp({ create: { width: 512, height: 512, channels: 3, background: "#6688aa" } }).png().toBuffer();
    const maskSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512"><rect width="512" height="512"/><circle cx="256" cy="256" r="80" fill="white"/></svg>`;
    const mask = await sharp(Buffer.from(maskSvg)).png().toBuffer();
    await sharp(picture).toFile(path.join(server.folders.input, "picture.png"));
    await sharp(mask).toFile(path.join(server.folders.input, "mask.png"));
    const bomb = await pixelBomb();
    // Warm up: the model loaded and every route's code compiled, so the first attack is not charged for it.
    await promptAndWait(server, encoded({ workflow: inpaintWorkflow("a bench") }));
    gc();
    const rssStart = rssMb();
    for (const attack of attacks(server, { picture: picture.toString("base64"), mask: mask.toString("base64"), bomb })) {
      process.stderr.write(`abuse: ${attack.name}…\n`);
      const row = await measure(server, attack, gc);
      rows.push(row);
      results[`abuse ${row.attack}: answer`] = row.answer;
      results[`abuse ${row.attack}: loop delay p99 ms`] = row.loopP99Ms;
      results[`abuse ${row.attack}: loop delay max ms`] = row.loopMaxMs;
      results[`abuse ${row.attack}: worst poll ms`] = row.worstPollMs;
      results[`abuse ${row.attack}: RSS before MB`] = row.rssBeforeMb;
      results[`abuse ${row.attack}: RSS after MB`] = row.rssAfterMb;
      results[`abuse ${row.attack}: verdict`] = row.verdict;
    }
    gc();
    const rssEnd = rssMb();
    results["abuse all attacks: RSS at start MB"] = rssStart;
    results["abuse all attacks: RSS at end MB"] = rssEnd;
    results["abuse all attacks: verdict"] =
      rows.every((row) => row.verdict === "PASS") && rssEnd <= rssStart * (1 + GOAL_RSS_GROWTH)
        ? "PASS"
        : `FAIL (${rows.filter((row) => row.verdict !== "PASS").length} of ${rows.length} attacks; RSS ${rssStart.toFixed(0)} → ${rssEnd.toFixed(0)} MB)`;
    results["abuse goals"] = `worst poll < ${GOAL_WORST_POLL_MS} ms; RSS after ≤ before + ${GOAL_RSS_GROWTH * 100} %`;
    printTable(rows);
  } finally {
    await server.close();
    await engine.release();
    await rm(dataDir, { recursive: true, force: true });
  }
  return results;
}
