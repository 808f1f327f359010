/**
 * The Redis (BullMQ) queue end to end: a real redis-server, a real server with `redisUrl`, and real
 * `maskflow worker` child processes sharing the server's data folder, running built-in nodes.
 */
import { readdir } from "node:fs/promises";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBuiltinRegistry } from "../nodes/index.ts";
import { Executor } from "../server/executor/executor.ts";
import { decodePreviewFrame } from "../server/http/preview-frame.ts";
import type { RunningServer } from "../server/maskflow-server.ts";
import { BullMqJobQueue } from "../server/queue/bullmq-job-queue.ts";
import { fromBullPriority, toBullPriority } from "../server/queue/redis-events.ts";
import { DataFolders } from "../server/storage/data-folders.ts";
import { HistoryStore } from "../server/storage/history-store.ts";
import { ensureTinyModels } from "./fixtures/make-tiny-models.ts";
import { startTestRedis, type TestRedis } from "./helpers/redis-server.ts";
import { RecordingLog } from "./helpers/recording-log.ts";
import { api, startTestServer, type TestServer } from "./helpers/test-server.ts";
import { spawnWorker, type WorkerProcess } from "./helpers/worker-process.ts";
import { connectClient } from "./helpers/ws-client.ts";

// Short enough that a killed worker's job is back in the queue within a few seconds; long enough
// that a busy event loop on a 2-core CI machine does not lose a live worker's lock.
const WORKER_TIMING = ["--lock-duration", "4000", "--stalled-interval", "1000"];

let redis: TestRedis;
let dataDir: string;
let server: TestServer;
let modelDir: string;
const workers: WorkerProcess[] = [];
const cleanups: Array<() => Promise<unknown>> = [];

async function addWorker(name: string): Promise<WorkerProcess> {
  const worker = await spawnWorker(name, ["--redis", redis.url, "--data", dataDir, "--model", modelDir, ...WORKER_TIMING]);
  workers.push(worker);
  return worker;
}

function liveWorkers(): WorkerProcess[] {
  return workers.filter((worker) => worker.child.exitCode === null && worker.child.signalCode === null);
}

beforeAll(async () => {
  // Persistent, so the restart test keeps the queue; every test shares it.
  redis = await startTestRedis({ persistent: true });
  cleanups.push(() => redis.dispose());
  dataDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-bullmq-"));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  modelDir = (await ensureTinyModels()).fp32;
  const folders = await new DataFolders(dataDir).create();
  await sharp({ create: { width: 32, height: 24, channels: 3, background: { r: 200, g: 80, b: 40 } } })
    .png()
    .toFile(path.join(folders.input, "small.png"));
  server = await startTestServer({ dataDir, redisUrl: redis.url, maxPendingPerClient: 50 });
  cleanups.push(() => server.close());
  await Promise.all([addWorker("w1"), addWorker("w2")]);
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(workers.map((worker) => worker.kill()));
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

/** LoadImage → ResizeImage → SaveImage: cheap, and a different width per job so no job is served from a worker's cache. */
function resizeWorkflow(width: number, prefix = "resized") {
  return {
    format: "maskflow-workflow",
    version: 1,
    nodes: [
      { id: "1", type: "LoadImage", inputs: { image: "small.png" } },
      { id: "2", type: "ResizeImage", inputs: { image: ["1", "image"], width, height: 16 } },
      { id: "3", type: "SaveImage", inputs: { images: ["2", "image"], filename_prefix: prefix } },
    ],
  };
}

/** Tiny-model inpainting: real progress and previews; the size and steps set how long it takes. */
function inpaintWorkflow(options: { size: number; steps: number; samples?: number; seed: number }) {
  return {
    format: "maskflow-workflow",
    version: 1,
    nodes: [
      { id: "1", type: "LoadImage", inputs: { image: "examples/room.png" } },
      { id: "2", type: "LoadMask", inputs: { image: "examples/room-mask.png", channel: "luminance" } },
      { id: "3", type: "Prompt", inputs: { positive: "a plant", negative: "" } },
      { id: "4", type: "Scheduler", inputs: { scheduler: "DDIM", steps: options.steps, guidance: 7.5, strength: 1, seed: options.seed } },
      {
        id: "5",
        type: "Inpaint",
        inputs: {
          image: ["1", "image"],
          mask: ["2", "mask"],
          prompt: ["3", "prompt"],
          scheduler: ["4", "scheduler"],
          model: "",
          samples: options.samples ?? 1,
          width: options.size,
          height: options.size,
        },
      },
      { id: "6", type: "SaveImage", inputs: { images: ["5", "images"], filename_prefix: "inpaint" } },
    ],
  };
}

async function submit(workflow: unknown, extra: Record<string, unknown> = {}): Promise<string> {
  const response = await api(server, "POST", "/api/prompt", { workflow, ...extra });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.id as string;
}

async function waitAll(ids: readonly string[], timeoutMs: number) {
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`jobs not finished within ${timeoutMs} ms; workers said:\n${workers.map((w) => w.lines.join("\n")).join("\n---\n")}`)), timeoutMs),
  );
  return Promise.race([Promise.all(ids.map((id) => server.queue.waitFor(id))), timeout]);
}

async function outputFiles(): Promise<string[]> {
  return readdir(path.join(dataDir, "output"));
}

function countOf<T>(items: readonly T[], item: T): number {
  return items.filter((x) => x === item).length;
}

describe("BullMQ priorities", () => {
  it("maps higher-first priorities onto BullMQ's lower-number-first ones and back", () => {
    expect([100, 10, 0, -5, -100].map(toBullPriority)).toEqual([1, 91, 101, 106, 201]);
    expect([1, 101, 201].map(fromBullPriority)).toEqual([100, 0, -100]);
  });
});

describe("BullMQ queue without workers", () => {
  it("orders pending jobs by priority, limits each client, cancels and clears", async () => {
    const folders = await new DataFolders(await mkdtemp(path.join(os.tmpdir(), "maskflow-bullmq-idle-"))).create();
    cleanups.push(() => rm(folders.root, { recursive: true, force: true }));
    const queue = await BullMqJobQueue.open({
      redisUrl: redis.url,
      log: new RecordingLog(), // it stays open through the Redis outage below, whose lines that test asserts
      queueName: "no-workers",
      executor: new Executor({ registry: createBuiltinRegistry(), storage: folders }),
      history: await new HistoryStore(folders.historyFile).load(),
      maxPending: 10,
      maxPendingPerClient: 2,
    });
    cleanups.push(() => queue.close());
    const low = await queue.enqueue(resizeWorkflow(10), { priority: -5, clientId: "a" });
    const normal = await queue.enqueue(resizeWorkflow(11), { clientId: "a" });
    const high = await queue.enqueue(resizeWorkflow(12), { priority: 10, clientId: "b" });
    expect([low.position, normal.position, high.position]).toEqual([0, 0, 0]);
    const later = await queue.enqueue(resizeWorkflow(13), { clientId: "b" });
    expect(later.position).toBe(2);

    const { pending, running } = await queue.snapshot();
    expect(running).toEqual([]);
    expect(pending.map((job) => job.id)).toEqual([high.id, normal.id, later.id, low.id]);
    expect(pending.map((job) => job.priority)).toEqual([10, 0, 0, -5]);
    await expect(queue.enqueue(resizeWorkflow(14), { clientId: "a" })).rejects.toMatchObject({
      status: 429,
      code: "client_queue_full",
      details: { clientId: "a", maxPendingPerClient: 2 },
    });
    await expect(queue.enqueue({ format: "maskflow-workflow", version: 1, nodes: [] })).rejects.toMatchObject({
      name: "WorkflowInvalidError",
      problems: [{ code: "no_output_node" }],
    });

    expect(await queue.cancel([normal.id, "no-such-job"])).toEqual([normal.id]);
    expect(await queue.interrupt(low.id)).toBe(false);
    expect(await queue.clearPending()).toBe(3);
    expect((await queue.snapshot()).pending).toEqual([]);
  });
});

describe("BullMQ queue limits under a burst", () => {
  it("lets exactly maxPending jobs in when ten arrive at once, and the same per client", async () => {
    const folders = await new DataFolders(await mkdtemp(path.join(os.tmpdir(), "maskflow-bullmq-burst-"))).create();
    cleanups.push(() => rm(folders.root, { recursive: true, force: true }));
    const queue = await BullMqJobQueue.open({
      redisUrl: redis.url,
      log: new RecordingLog(),
      queueName: "burst",
      executor: new Executor({ registry: createBuiltinRegistry(), storage: folders }),
      history: await new HistoryStore(folders.historyFile).load(),
      maxPending: 3,
      maxPendingPerClient: 2,
    });
    cleanups.push(() => queue.close());
    const settle = (clientId?: string) =>
      Promise.allSettled(Array.from({ length: 10 }, (_, i) => queue.enqueue(resizeWorkflow(20 + i), { clientId })));
    const perClient = await settle("eager");
    expect(perClient.filter((r) => r.status === "fulfilled")).toHaveLength(2);
    expect(perClient.filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason.code)).toEqual(Array(8).fill("client_queue_full"));
    const anyone = await settle();
    expect(anyone.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect((await queue.snapshot()).pending).toHaveLength(3);
    expect(await queue.clearPending()).toBe(3);
  });
});

describe("BullMQ queue with maskflow workers", () => {
  it("runs twenty jobs on two workers, each exactly once, history and files named by job id", async () => {
    const before = new Set(await outputFiles());
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await submit(resizeWorkflow(8 + i)));
    const entries = await waitAll(ids, 30_000);

    expect(entries.map((entry) => entry.status)).toEqual(ids.map(() => "success"));
    const history = (await api(server, "GET", "/api/history")).body as Array<{ id: string }>;
    for (const id of ids) expect(countOf(history.map((entry) => entry.id), id)).toBe(1);
    for (const entry of entries) {
      const images = entry.outputs["3"].images;
      expect(images).toEqual([{ filename: `${entry.id}_resized_01.png`, subfolder: "", type: "output" }]);
    }
    const added = (await outputFiles()).filter((file) => !before.has(file)).sort();
    expect(added).toEqual(ids.map((id) => `${id}_resized_01.png`).sort());

    const started = workers.flatMap((worker) => worker.started());
    const finished = workers.flatMap((worker) => worker.finished());
    for (const id of ids) {
      expect(countOf(started, id)).toBe(1);
      expect(countOf(finished, id)).toBe(1);
    }
    // Both workers took part.
    for (const worker of workers) expect(worker.started().some((id) => ids.includes(id))).toBe(true);
  });

  it("shows a worker's progress and previews on the server's WebSocket, as in embedded mode", async () => {
    const client = await connectClient(server.url, "ws-client");
    cleanups.push(async () => client.close());
    const id = await submit(inpaintWorkflow({ size: 64, steps: 4, seed: 7 }), { clientId: "ws-client" });
    await client.waitFor((m) => m.type === "execution_success" && m.data.jobId === id, 20_000);
    const types = client.messages.filter((m) => m.type !== "status").map((m) => m.type);
    expect(types[0]).toBe("execution_start");
    expect(types.at(-1)).toBe("execution_success");
    // The worker's first use of the model shows its load (labelled), then the four steps.
    const progress = client.messages.filter((m) => m.type === "progress").map((m) => m.data);
    const steps = progress.filter((p) => p.label === undefined);
    expect(steps.map((p) => [p.node, p.value, p.max])).toEqual([1, 2, 3, 4].map((v) => ["5", v, 4]));
    const phases = progress.filter((p) => p.label !== undefined);
    expect(phases.every((p) => (p.label === "loading model" || p.label === "warming up") && p.max === 4)).toBe(true);
    expect(phases.at(-1)?.label).toBe("warming up");
    const frames = client.messages.filter((m) => m.type === "binary");
    expect(frames.length).toBeGreaterThan(0);
    const frame = decodePreviewFrame(frames[0].binary!);
    expect([frame.event, frame.format, frame.nodeId]).toEqual([1, 1, "5"]);
    expect(frame.jpeg.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
    expect((await server.queue.waitFor(id)).status).toBe("success");
  });

  it("records a node error once, without retrying it", async () => {
    const doc = resizeWorkflow(9);
    doc.nodes[0].inputs = { image: "no-such-picture.png" };
    const id = await submit(doc);
    const [entry] = await waitAll([id], 15_000);
    expect(entry.status).toBe("error");
    expect(entry.error?.node).toBe("1");
    expect(countOf(workers.flatMap((worker) => worker.started()), id)).toBe(1);
  });

  it("interrupts the job on the worker that runs it", async () => {
    const client = await connectClient(server.url, "interrupter");
    cleanups.push(async () => client.close());
    const id = await submit(inpaintWorkflow({ size: 512, steps: 150, samples: 4, seed: 11 }), { clientId: "interrupter" });
    await client.waitFor((m) => m.type === "progress" && m.data.jobId === id, 20_000);
    expect((await api(server, "POST", "/api/interrupt", { id })).body).toEqual({ interrupted: true });
    const [entry] = await waitAll([id], 15_000);
    expect(entry.status).toBe("interrupted");
    expect((await api(server, "POST", "/api/interrupt", { id })).body).toEqual({ interrupted: false });
  });

  it("runs the job of a worker killed mid-job on another worker, once", async () => {
    const slow = await submit(inpaintWorkflow({ size: 512, steps: 100, samples: 2, seed: 5 }));
    const victim = await Promise.race(liveWorkers().map((worker) => worker.waitForLine(new RegExp(`job ${slow} started`)).then(() => worker)));
    await victim.kill("SIGKILL");
    const quick: string[] = [];
    for (let i = 0; i < 4; i++) quick.push(await submit(resizeWorkflow(40 + i)));
    const entries = await waitAll([slow, ...quick], 40_000);
    expect(entries.map((entry) => entry.status)).toEqual(entries.map(() => "success"));

    const survivors = liveWorkers();
    expect(survivors.flatMap((w) => w.started())).toContain(slow);
    expect(countOf(survivors.flatMap((w) => w.finished()), slow)).toBe(1);
    expect(victim.finished()).not.toContain(slow);
    const history = (await api(server, "GET", "/api/history")).body as Array<{ id: string }>;
    expect(countOf(history.map((entry) => entry.id), slow)).toBe(1);
    const files = (await outputFiles()).filter((file) => file.startsWith(slow));
    expect(files.sort()).toEqual([`${slow}_inpaint_01.png`, `${slow}_inpaint_02.png`]);
    await addWorker("w3");
  });

  it("ends a job that keeps killing its workers in history with its error, once, after its reruns", async () => {
    const doomed = await submit(inpaintWorkflow({ size: 512, steps: 150, samples: 2, seed: 11 }));
    // maxStalledCount is 2: the third worker lost on the job fails it.
    for (let kill = 1; kill <= 3; kill++) {
      const victim = await Promise.race(liveWorkers().map((worker) => worker.waitForLine(new RegExp(`job ${doomed} started`)).then(() => worker)));
      await victim.kill("SIGKILL");
      await addWorker(`w-doomed-${kill}`);
    }
    const [entry] = await waitAll([doomed], 60_000);
    expect(entry.status).toBe("error");
    expect(entry.error?.message).toMatch(/stall/i);
    const history = (await api(server, "GET", "/api/history")).body as Array<{ id: string }>;
    expect(countOf(history.map((item) => item.id), doomed)).toBe(1);
    // The queue goes on with the workers that are left.
    const after = await submit(resizeWorkflow(101));
    expect((await waitAll([after], 15_000))[0].status).toBe("success");
  }, 90_000);

  it("loses no job when Redis stops and starts again mid-run", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await submit(inpaintWorkflow({ size: 256, steps: 30, seed: 100 + i })));
    await server.queue.waitFor(ids[0]);
    expect(server.history.get(ids.at(-1)!), "the run should still be going when Redis stops").toBeUndefined();
    // A crash, not a clean shutdown: the append-only file (fsync on every write) is all that survives.
    await redis.stop({ crash: true });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const during = await api(server, "POST", "/api/prompt", { workflow: resizeWorkflow(99) });
    expect(during.status).toBe(503);
    expect(during.body.error.code).toBe("queue_unavailable");
    await redis.start();
    const entries = await waitAll(ids, 40_000);
    expect(entries.map((entry) => entry.status)).toEqual(ids.map(() => "success"));
    const history = (await api(server, "GET", "/api/history")).body as Array<{ id: string }>;
    for (const id of ids) expect(countOf(history.map((entry) => entry.id), id)).toBe(1);
    // And the queue works again afterwards.
    const after = await submit(resizeWorkflow(100));
    expect((await waitAll([after], 15_000))[0].status).toBe("success");
    // The outage is told once per connection, in one line each, not a stack trace per request.
    const lines = server.log.text();
    expect(lines).toMatch(/redis queue: .*ECONN(RESET|REFUSED)/);
    expect(lines).toMatch(/redis queue: reconnected to Redis/);
    expect(lines).toMatch(/POST \/api\/prompt: 503 queue_unavailable: could not queue the job/);
    expect(lines).not.toMatch(/\n\s+at /);
  });
});
