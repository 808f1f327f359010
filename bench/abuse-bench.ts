/**
 * The attacks of issue 12, one after another, against a real server in a process of its own
 * (abuse-server.ts), while a second client in a third process polls GET /api/system every 20 ms. This
 * process only builds the payloads (before each measurement starts) and sends them over HTTP and
 * WebSocket, so neither its memory nor its CPU work is charged to the server. For each attack: the answer;
 * from the server process, its event loop's delay (perf_hooks monitorEventLoopDelay, p99 and max), its RSS
 * before and after (each after a full GC) and its output cache's bytes after; from the poller, its worst
 * latency. Goals: worst latency under 100 ms during every attack, RSS back within 20 % of where it started.
 * Rows that miss a goal say FAIL; nothing is hidden. The output cache (bounded, 1 GB by default, emptied by
 * POST /api/free) is shown beside RSS so growth that is the cache can be told from a leak, but it is not
 * subtracted. The battery's RSS is taken again 35 s after the last attack, once the compute pool's idle
 * workers (whose heaps no GC on the main thread reaches) have ended. `npm run bench abuse`.
 */
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import zlib from "node:zlib";
import sharp from "sharp";
import { WebSocket } from "ws";
import { z } from "zod";
import { type AbuseServerProcess, startAbuseServer } from "./abuse-server-process.ts";
import { startSystemPoller } from "./system-poller.ts";

export const GOAL_WORST_POLL_MS = 100;
/** RSS after an attack may be at most this much above RSS before it. */
export const GOAL_RSS_GROWTH = 0.2;
/** An attack still going after this is stopped and reported as timed out. */
const ATTACK_LIMIT_MS = 120_000;
/** Measuring goes on this long after the answer. */
const SETTLE_MS = 100;
/**
 * The compute pool (server/compute/compute-pool.ts) ends a worker thread idle for 30 s; a full GC on the server's
 * main thread does not reach the workers' heaps (a 12 MB body of 1,000,000 keys is parsed on one), so the battery's
 * RSS is also taken this long after the last attack, beside the figure the verdict uses.
 */
const POOL_IDLE_WAIT_MS = 35_000;
/** A job's ending is asked of GET /api/history/:id this often, at most ATTACK_LIMIT_MS / JOB_POLL_MS times. */
const JOB_POLL_MS = 50;

type Node = { id: string; type: string; inputs: Record<string, unknown> };
const workflow = (nodes: Node[]) => ({ format: "maskflow-workflow", version: 1, nodes });

interface Attack {
  readonly name: string;
  /** Builds what it sends before anything is measured, so the bench's own payloads do not count as the server's memory. */
  prepare(): Promise<unknown> | unknown;
  /** Makes the attack and answers what the server said (statuses, a job's ending); `signal` ends it at the time limit. */
  run(payload: unknown, signal: AbortSignal): Promise<string>;
}

/** The server under attack: its URL for the attacks, its process for what only it can see. */
interface Target {
  readonly url: string;
  readonly server: AbuseServerProcess;
}

interface Row {
  readonly attack: string;
  readonly answer: string;
  readonly loopP99Ms: number;
  readonly loopMaxMs: number;
  readonly worstPollMs: number;
  readonly rssBeforeMb: number;
  readonly rssAfterMb: number;
  /** The server's output cache after the attack: bounded and documented, so not a leak. */
  readonly outputCacheAfterMb: number;
  readonly verdict: string;
}

const megabytes = (bytes: number) => bytes / (1024 * 1024);

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

/** Bodies are encoded before measuring starts, so the attack itself is only the sending. */
const encoded = (value: unknown): Uint8Array<ArrayBuffer> => new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));

async function postJson(url: string, route: string, body: Uint8Array<ArrayBuffer>, signal: AbortSignal): Promise<Response> {
  return fetch(url + route, { method: "POST", headers: { "content-type": "application/json" }, body, signal });
}

/** POST and the status only (the body read and dropped, so the connection is free again). */
async function postStatus(url: string, route: string, body: Uint8Array<ArrayBuffer>, signal: AbortSignal): Promise<string> {
  const response = await postJson(url, route, body, signal);
  await response.arrayBuffer();
  return String(response.status);
}

const acceptedJob = z.object({ id: z.string() });
const finishedJob = z.object({ status: z.string() });

/**
 * How a job ended, from GET /api/history/:id (a 404 until it has a finished record), asked every JOB_POLL_MS.
 * Bounded by count and by the attack's signal.
 */
async function waitForJob(url: string, id: string, signal: AbortSignal): Promise<string> {
  const polls = Math.ceil(ATTACK_LIMIT_MS / JOB_POLL_MS);
  for (let poll = 0; poll < polls; poll++) {
    const response = await fetch(`${url}/api/history/${encodeURIComponent(id)}`, { signal });
    if (response.status === 200) return finishedJob.parse(await response.json()).status;
    await response.arrayBuffer();
    if (response.status !== 404) throw new Error(`GET /api/history/${id} answered ${response.status}`);
    await sleep(JOB_POLL_MS, undefined, { signal });
  }
  throw new Error(`job ${id} had no finished record after ${polls} polls of GET /api/history/${id}`);
}

/** POST /api/prompt; when accepted, waits for the job and says how it ended. */
async function promptAndWait(url: string, body: Uint8Array<ArrayBuffer>, signal: AbortSignal): Promise<string> {
  const response = await postJson(url, "/api/prompt", body, signal);
  if (response.status !== 200) {
    await response.arrayBuffer();
    return String(response.status);
  }
  const { id } = acceptedJob.parse(await response.json());
  return `200, job ${await waitForJob(url, id, signal)}`;
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

function attacks({ url, server }: Target, pictures: { picture: string; mask: string; bomb: Buffer }): Attack[] {
  const words = longRandomWords();
  const xs = "x".repeat(1_000_000);
  return [
    {
      name: "384 KB prompt of long words, /api/prompt",
      prepare: () => encoded({ workflow: inpaintWorkflow(words) }),
      run: (body, signal) => promptAndWait(url, body as Uint8Array<ArrayBuffer>, signal),
    },
    {
      name: '"x" × 1,000,000 prompt, /api/prompt',
      prepare: () => encoded({ workflow: inpaintWorkflow(xs) }),
      run: (body, signal) => promptAndWait(url, body as Uint8Array<ArrayBuffer>, signal),
    },
    {
      name: "384 KB prompt of long words, Segmind",
      prepare: () => segmindBody(pictures.picture, pictures.mask, words),
      run: (body, signal) => postStatus(url, "/v1/sd1.5-inpainting", body as Uint8Array<ArrayBuffer>, signal),
    },
    {
      name: '"x" × 1,000,000 prompt, Segmind',
      prepare: () => segmindBody(pictures.picture, pictures.mask, xs),
      run: (body, signal) => postStatus(url, "/v1/sd1.5-inpainting", body as Uint8Array<ArrayBuffer>, signal),
    },
    {
      name: "1 MB PNG declaring 16383², upload",
      prepare: () => {
        const form = new FormData();
        form.append("image", new Blob([new Uint8Array(pictures.bomb)], { type: "image/png" }), "bomb.png");
        return form;
      },
      run: async (form, signal) => {
        const response = await fetch(`${url}/api/upload`, { method: "POST", body: form as FormData, signal });
        await response.arrayBuffer();
        return String(response.status);
      },
    },
    {
      name: "1 MB PNG declaring 16383², Segmind",
      prepare: () => segmindBody(pictures.bomb.toString("base64"), pictures.mask, "a bench"),
      run: (body, signal) => postStatus(url, "/v1/sd1.5-inpainting", body as Uint8Array<ArrayBuffer>, signal),
    },
    {
      name: "9,990-node chain, listed in order",
      prepare: () => encoded({ workflow: chain("forward") }),
      run: (body, signal) => promptAndWait(url, body as Uint8Array<ArrayBuffer>, signal),
    },
    {
      name: "9,990-node chain, listed backwards",
      prepare: () => encoded({ workflow: chain("reverse") }),
      run: (body, signal) => promptAndWait(url, body as Uint8Array<ArrayBuffer>, signal),
    },
    {
      name: "one node with 1,000,000 unknown inputs",
      prepare: () => {
        const inputs: Record<string, unknown> = { image: "picture.png" };
        for (let i = 0; i < 1_000_000; i++) inputs[`u${i}`] = 0;
        return encoded({ workflow: workflow([{ id: "1", type: "LoadImage", inputs }, { id: "2", type: "PreviewImage", inputs: { images: ["1", "image"] } }]) });
      },
      run: async (body, signal) => {
        const response = await postJson(url, "/api/prompt", body as Uint8Array<ArrayBuffer>, signal);
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
      run: (body, signal) => promptAndWait(url, body as Uint8Array<ArrayBuffer>, signal),
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
      run: async (bodies, signal) => {
        const answers: string[] = [];
        for (const body of bodies as Uint8Array<ArrayBuffer>[]) answers.push(await promptAndWait(url, body, signal));
        return summarize(answers);
      },
    },
    {
      name: "Segmind endpoint eight times",
      prepare: () => Array.from({ length: 8 }, (_, i) => segmindBody(pictures.picture, pictures.mask, `a bench, take ${i}`)),
      run: async (bodies, signal) => {
        const answers: string[] = [];
        for (const body of bodies as Uint8Array<ArrayBuffer>[]) answers.push(await postStatus(url, "/v1/sd1.5-inpainting", body, signal));
        const left = await server.ask("segmind-inputs");
        return `${summarize(answers)}; input/segmind: ${left.files} files, ${megabytes(left.bytes).toFixed(1)} MB`;
      },
    },
    {
      name: "WebSocket client that never reads, 4 × 100-step job",
      prepare: () => encoded({ workflow: inpaintWorkflow("a bench", { steps: 100, samples: 4 }), clientId: "abuse-stalled" }),
      run: async (body, signal) => {
        // The server process samples its own end of the stalled socket: what it holds unsent for that client.
        await server.ask("watch-socket", { clientId: "abuse-stalled" });
        const client = new WebSocket(`${url.replace(/^http/, "ws")}/ws?clientId=abuse-stalled`);
        client.on("error", () => {}); // a close by the server is a result here, reported below
        let answer = "";
        let held: { connected: boolean; heldMostBytes: number; closedByServer: boolean };
        try {
          await once(client, "message", { signal });
          client.pause();
          answer = await promptAndWait(url, body as Uint8Array<ArrayBuffer>, signal);
        } finally {
          // Asked before this end closes, so "closed" can only be the server's doing; asked on every path, so the watch ends.
          held = await server.ask("socket-report");
          client.terminate();
        }
        const socket = !held.connected ? "never seen by the server" : held.closedByServer ? "closed by the server" : "open";
        return `${answer}; held for it at most ${(held.heldMostBytes / 1024).toFixed(0)} KB; socket ${socket}`;
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

/** Pending jobs removed and the running one interrupted, so an attack past its limit does not run into the next one's figures. */
async function clearQueue(url: string): Promise<void> {
  const post = async (route: string, body: unknown) => {
    const response = await fetch(url + route, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`POST ${route} answered ${response.status}`);
  };
  await post("/api/queue", { clear: true });
  await post("/api/interrupt", {});
}

async function measure(target: Target, attack: Attack): Promise<Row> {
  const payload = await attack.prepare();
  // The server process: full GC, RSS, its event-loop delay monitor on (over the poller's whole window, so an
  // attack shorter than the resolution still has samples).
  await target.server.ask("start");
  const poller = await startSystemPoller(target.url);
  let answer: string;
  const limit = new AbortController();
  const timer = setTimeout(() => limit.abort(new Error(`timed out after ${ATTACK_LIMIT_MS / 1000} s`)), ATTACK_LIMIT_MS);
  try {
    answer = await attack.run(payload, limit.signal);
  } catch (error) {
    answer = limit.signal.aborted ? `timed out after ${ATTACK_LIMIT_MS / 1000} s` : `failed: ${(error as Error).message}`;
  } finally {
    clearTimeout(timer);
  }
  // A few more polls: work the attack left behind (a history write, a removal) is part of it.
  await sleep(SETTLE_MS);
  const polled = await poller.stop();
  if (limit.signal.aborted) {
    await clearQueue(target.url).catch((error: unknown) => {
      answer += `; clearing the queue failed: ${(error as Error).message}`;
    });
  }
  const server = await target.server.ask("stop");
  const problems: string[] = [];
  if (polled.failure) problems.push(`poller failed: ${polled.failure}`);
  if (!(polled.worstMs < GOAL_WORST_POLL_MS)) problems.push(`worst poll ${polled.worstMs.toFixed(0)} ms`);
  if (server.rssAfterMb > server.rssBeforeMb * (1 + GOAL_RSS_GROWTH)) problems.push(`RSS +${((server.rssAfterMb / server.rssBeforeMb - 1) * 100).toFixed(0)} %`);
  return {
    attack: attack.name,
    answer,
    loopP99Ms: server.loopP99Ms,
    loopMaxMs: server.loopMaxMs,
    worstPollMs: polled.worstMs,
    rssBeforeMb: server.rssBeforeMb,
    rssAfterMb: server.rssAfterMb,
    outputCacheAfterMb: megabytes(server.outputCacheBytes),
    verdict: problems.length ? `FAIL (${problems.join("; ")})` : "PASS",
  };
}

function printTable(rows: readonly Row[]): void {
  const header = ["attack", "answer", "loop p99 ms", "loop max ms", "worst poll ms", "RSS MB before → after", "cache MB after", "verdict"];
  const lines = rows.map((row) => [
    row.attack,
    row.answer,
    row.loopP99Ms.toFixed(1),
    row.loopMaxMs.toFixed(1),
    row.worstPollMs.toFixed(1),
    `${row.rssBeforeMb.toFixed(0)} → ${row.rssAfterMb.toFixed(0)}`,
    row.outputCacheAfterMb.toFixed(1),
    row.verdict,
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column].length)));
  const format = (cells: readonly string[]) => cells.map((cell, column) => cell.padEnd(widths[column])).join("  ").trimEnd();
  process.stderr.write(
    `abuse: goals: worst poll under ${GOAL_WORST_POLL_MS} ms during every attack; the server's RSS after within ${GOAL_RSS_GROWTH * 100} % of before ` +
      `(cache = the server's output cache, bounded at 1 GB by default and emptied by POST /api/free; counted in RSS, not subtracted)\n`,
  );
  process.stderr.write(`${format(header)}\n${lines.map(format).join("\n")}\n`);
}

/** Puts a picture into the server's input folder under `name`, as a user would. */
async function upload(url: string, name: string, png: Buffer): Promise<void> {
  const form = new FormData();
  form.append("image", new Blob([new Uint8Array(png)], { type: "image/png" }), name);
  form.append("overwrite", "true");
  const response = await fetch(`${url}/api/upload`, { method: "POST", body: form, signal: AbortSignal.timeout(60_000) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`uploading ${name} answered ${response.status}: ${text}`);
  const stored = z.object({ name: z.string() }).parse(JSON.parse(text)).name;
  if (stored !== name) throw new Error(`${name} was stored as ${stored}`);
}

export async function benchAbuse(): Promise<Record<string, number | string>> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-bench-abuse-"));
  let server: AbuseServerProcess | undefined;
  // Ctrl-C or a kill: the server process ends with the IPC channel anyway; this also waits for it, removes its
  // data and ends the bench. From then on the run's own failures (its server gone) are not reported.
  let ending: Promise<never> | undefined;
  const interrupted = (signal: NodeJS.Signals) => {
    ending ??= (async () => {
      await server?.stop();
      await rm(dataDir, { recursive: true, force: true });
      process.exit(signal === "SIGINT" ? 130 : 143);
    })();
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  const results: Record<string, number | string> = {};
  const rows: Row[] = [];
  try {
    server = await startAbuseServer(dataDir);
    const target: Target = { url: server.url, server };
    const picture = await sharp({ create: { width: 512, height: 512, channels: 3, background: "#6688aa" } }).png().toBuffer();
    const maskSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512"><rect width="512" height="512"/><circle cx="256" cy="256" r="80" fill="white"/></svg>`;
    const mask = await sharp(Buffer.from(maskSvg)).png().toBuffer();
    await upload(target.url, "picture.png", picture);
    await upload(target.url, "mask.png", mask);
    const bomb = await pixelBomb();
    // Warm up: the model loaded and every route's code compiled, so the first attack is not charged for it.
    const warmUp = await promptAndWait(target.url, encoded({ workflow: inpaintWorkflow("a bench") }), AbortSignal.timeout(ATTACK_LIMIT_MS));
    if (warmUp !== "200, job success") throw new Error(`the warm-up job did not succeed: ${warmUp}`);
    const start = await server.ask("rss");
    for (const attack of attacks(target, { picture: picture.toString("base64"), mask: mask.toString("base64"), bomb })) {
      process.stderr.write(`abuse: ${attack.name}…\n`);
      const row = await measure(target, attack);
      rows.push(row);
      results[`abuse ${row.attack}: answer`] = row.answer;
      results[`abuse ${row.attack}: loop delay p99 ms`] = row.loopP99Ms;
      results[`abuse ${row.attack}: loop delay max ms`] = row.loopMaxMs;
      results[`abuse ${row.attack}: worst poll ms`] = row.worstPollMs;
      results[`abuse ${row.attack}: RSS before MB`] = row.rssBeforeMb;
      results[`abuse ${row.attack}: RSS after MB`] = row.rssAfterMb;
      results[`abuse ${row.attack}: output cache after MB`] = row.outputCacheAfterMb;
      results[`abuse ${row.attack}: verdict`] = row.verdict;
    }
    const end = await server.ask("rss");
    process.stderr.write(`abuse: waiting ${POOL_IDLE_WAIT_MS / 1000} s for the compute pool's idle workers to end…\n`);
    await sleep(POOL_IDLE_WAIT_MS);
    const idled = await server.ask("rss");
    results["abuse all attacks: RSS at start MB"] = start.rssMb;
    results["abuse all attacks: RSS at end MB"] = end.rssMb;
    results[`abuse all attacks: RSS ${POOL_IDLE_WAIT_MS / 1000} s after the end MB`] = idled.rssMb;
    results["abuse all attacks: output cache at start MB"] = megabytes(start.outputCacheBytes);
    results["abuse all attacks: output cache at end MB"] = megabytes(end.outputCacheBytes);
    results["abuse all attacks: verdict"] =
      rows.every((row) => row.verdict === "PASS") && end.rssMb <= start.rssMb * (1 + GOAL_RSS_GROWTH)
        ? "PASS"
        : `FAIL (${rows.filter((row) => row.verdict !== "PASS").length} of ${rows.length} attacks; RSS ${start.rssMb.toFixed(0)} → ${end.rssMb.toFixed(0)} MB)`;
    results["abuse goals"] = `worst poll < ${GOAL_WORST_POLL_MS} ms; the server's RSS after ≤ before + ${GOAL_RSS_GROWTH * 100} %`;
    printTable(rows);
    process.stderr.write(
      `abuse: the server's RSS over the battery: ${start.rssMb.toFixed(0)} → ${end.rssMb.toFixed(0)} MB (verdict), ` +
        `${idled.rssMb.toFixed(0)} MB ${POOL_IDLE_WAIT_MS / 1000} s later; output cache ${megabytes(start.outputCacheBytes).toFixed(1)} → ${megabytes(end.outputCacheBytes).toFixed(1)} MB\n`,
    );
  } catch (error) {
    if (ending) await ending;
    throw error;
  } finally {
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
    await server?.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
  return results;
}
