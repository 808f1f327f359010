/** A batch on the Redis queue: queued all or none under the same limits as the embedded queue, its jobs carrying their place. */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBuiltinRegistry } from "../nodes/index.ts";
import { Executor } from "../server/executor/executor.ts";
import { BullMqJobQueue } from "../server/queue/bullmq-job-queue.ts";
import { DataFolders } from "../server/storage/data-folders.ts";
import { HistoryStore } from "../server/storage/history-store.ts";
import sharp from "sharp";
import { startTestRedis, type TestRedis } from "./helpers/redis-server.ts";
import { RecordingLog } from "./helpers/recording-log.ts";
import { api, startTestServer } from "./helpers/test-server.ts";
import { spawnWorker } from "./helpers/worker-process.ts";

let redis: TestRedis;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  redis = await startTestRedis();
  cleanups.push(() => redis.dispose());
}, 30_000);

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

function resize(image: string, name: string) {
  return {
    workflow: {
      format: "maskflow-workflow",
      version: 1,
      nodes: [
        { id: "1", type: "LoadImage", inputs: { image } },
        { id: "2", type: "ResizeImage", inputs: { image: ["1", "image"], width: 8, height: 8 } },
        { id: "3", type: "SaveImage", inputs: { images: ["2", "image"], filename_prefix: name } },
      ],
    },
    name,
  };
}

describe("a batch on the BullMQ queue (no workers)", () => {
  it("queues every job or none, in order, each with its batch place in the snapshot and the queued record", async () => {
    const folders = await new DataFolders(await mkdtemp(path.join(os.tmpdir(), "maskflow-bullmq-batch-"))).create();
    cleanups.push(() => rm(folders.root, { recursive: true, force: true }));
    const history = await new HistoryStore(folders.historyFile).load();
    const queue = await BullMqJobQueue.open({
      redisUrl: redis.url,
      log: new RecordingLog(),
      queueName: "batch",
      executor: new Executor({ registry: createBuiltinRegistry(), storage: folders }),
      history,
      maxPending: 4,
      maxPendingPerClient: 3,
    });
    cleanups.push(() => queue.close());
    const batch = (names: string[], id: string) =>
      names.map((name, index) => {
        const { workflow } = resize(`photos/${name}.png`, name);
        return { workflow, batch: { id, index, count: names.length, name } };
      });

    const queued = await queue.enqueueBatch(batch(["a", "b", "c"], "B1"), { clientId: "one" });
    expect(queued.map((job) => job.position)).toEqual([0, 1, 2]);
    const { pending } = await queue.snapshot();
    expect(pending.map((job) => [job.id, job.batch])).toEqual(
      ["a", "b", "c"].map((name, index) => [queued[index].id, { id: "B1", index, count: 3, name }]),
    );
    // The history holds each as queued, with its place: a crash would leave them there as cut off, still grouped.
    await history.cutOff(queued[1].id, "test: cut off");
    expect(history.get(queued[1].id) ?? (await history.read(queued[1].id))).toMatchObject({ status: "error", batch: { id: "B1", index: 1, name: "b" } });

    // Bigger than the queue or a client may ever hold: 400. Bigger than the room left now: 429, and nothing is added.
    await expect(queue.enqueueBatch(batch(["a", "b", "c", "d", "e"], "B2"))).rejects.toMatchObject({ status: 400, code: "batch_too_large" });
    await expect(queue.enqueueBatch(batch(["a", "b", "c", "d"], "B2"), { clientId: "two" })).rejects.toMatchObject({ status: 400, code: "batch_too_large", details: { limit: 3 } });
    await expect(queue.enqueueBatch(batch(["d", "e"], "B2"))).rejects.toMatchObject({ status: 429, code: "queue_full", details: { count: 2, room: 1 } });
    await expect(queue.enqueueBatch(batch(["d"], "B2"), { clientId: "one" })).rejects.toMatchObject({ status: 429, code: "client_queue_full", details: { room: 0 } });
    // An invalid workflow anywhere in the batch: none of it is queued.
    const broken = batch(["d"], "B3");
    await expect(queue.enqueueBatch([...broken, { workflow: { format: "maskflow-workflow", version: 1, nodes: [] }, batch: { id: "B3", index: 1, count: 2, name: "e" } }])).rejects.toMatchObject({
      name: "WorkflowInvalidError",
    });
    expect((await queue.snapshot()).pending).toHaveLength(3);
    expect(await queue.clearPending()).toBe(3);
  });
});

describe("a batch through the server and a maskflow worker on Redis", () => {
  it("runs each picture on the worker and records it in history with its place in the batch", async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-bullmq-batch-e2e-"));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const server = await startTestServer({ dataDir, redisUrl: redis.url });
    cleanups.push(() => server.close());
    for (const [name, grey] of [["cat", 30], ["yak", 220]] as const) {
      const form = new FormData();
      const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: grey, g: grey, b: grey } } }).png().toBuffer();
      form.append("image", new Blob([new Uint8Array(png)]), `${name}.png`);
      form.append("subfolder", "photos");
      expect((await fetch(`${server.url}/api/upload`, { method: "POST", body: form })).status).toBe(200);
    }
    const worker = await spawnWorker("batch-worker", ["--redis", redis.url, "--data", dataDir]);
    cleanups.push(() => worker.kill());
    const { workflow } = resize("", "job");
    const queued = await api(server, "POST", "/api/prompt/batch", { workflow, inputs: { "1.image": "photos" } });
    expect(queued.status, JSON.stringify(queued.body)).toBe(200);
    const ids = queued.body.jobs.map((job: { id: string }) => job.id);
    const entries = await Promise.race([
      Promise.all(ids.map((id: string) => server.queue.waitFor(id))),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`batch not done in 30 s: ${worker.lines.slice(-5).join(" | ")}`)), 30_000)),
    ]);
    for (const [index, entry] of entries.entries()) {
      const name = ["cat", "yak"][index];
      expect(entry.status, entry.error?.message).toBe("success");
      expect(entry.batch).toEqual({ id: queued.body.batch.id, index, count: 2, name });
      expect(entry.outputs["3"].images[0].filename).toContain(`job_${name}`);
    }
  }, 60_000);
});
