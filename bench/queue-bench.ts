/**
 * The Redis queue against the embedded one, on a cheap graph (LoadImage → ResizeImage → SaveImage on
 * a 32×24 PNG, a different width per job so no worker serves it from its cache):
 *
 * - jobs per second with the in-process queue, and with 1, 2 and 4 `maskflow worker` processes;
 * - latency of one job at a time (queue → history entry), embedded and with one worker; the difference
 *   is what Redis, the worker hop and the result round trip add per job.
 *
 * Starts its own redis-server on a free loopback port (needs /usr/bin/redis-server).
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { type RunningServer, startServer } from "../server/maskflow-server.ts";
import { DataFolders } from "../server/storage/data-folders.ts";
import { startTestRedis } from "../test/helpers/redis-server.ts";
import { spawnWorker, type WorkerProcess } from "../test/helpers/worker-process.ts";

const THROUGHPUT_JOBS = 60;
const LATENCY_JOBS = 20;
let widthCounter = 8;

function cheapWorkflow() {
  const width = 8 + (widthCounter++ % 2000);
  return {
    format: "maskflow-workflow",
    version: 1,
    nodes: [
      { id: "1", type: "LoadImage", inputs: { image: "bench.png" } },
      { id: "2", type: "ResizeImage", inputs: { image: ["1", "image"], width, height: 16 } },
      { id: "3", type: "SaveImage", inputs: { images: ["2", "image"], filename_prefix: "bench" } },
    ],
  };
}

async function jobsPerSecond(server: RunningServer, count: number): Promise<number> {
  const started = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push((await server.queue.enqueue(cheapWorkflow())).id);
  const entries = await Promise.all(ids.map((id) => server.queue.waitFor(id)));
  const failed = entries.filter((entry) => entry.status !== "success");
  if (failed.length) throw new Error(`${failed.length} bench jobs failed: ${failed[0].error?.message}`);
  return count / ((performance.now() - started) / 1000);
}

/** Median milliseconds from enqueue to the history entry, one job at a time. */
async function latencyMs(server: RunningServer, count: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const { id } = await server.queue.enqueue(cheapWorkflow());
    await server.queue.waitFor(id);
    samples.push(performance.now() - started);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

export async function benchQueue(): Promise<Record<string, number>> {
  const results: Record<string, number> = {};
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-queue-bench-"));
  const folders = await new DataFolders(dataDir).create();
  await sharp({ create: { width: 32, height: 24, channels: 3, background: { r: 90, g: 140, b: 30 } } })
    .png()
    .toFile(path.join(folders.input, "bench.png"));
  const quiet = { maxPending: THROUGHPUT_JOBS * 2 };

  const embedded = await startServer({ host: "127.0.0.1", port: 0, dataDir, ...quiet });
  try {
    await jobsPerSecond(embedded, 5); // warm-up: sharp, the image decoder
    results["queue.embedded.jobs_per_s"] = await jobsPerSecond(embedded, THROUGHPUT_JOBS);
    results["queue.embedded.latency_ms"] = await latencyMs(embedded, LATENCY_JOBS);
  } finally {
    await embedded.close();
  }

  const redis = await startTestRedis();
  const server = await startServer({ host: "127.0.0.1", port: 0, dataDir, redisUrl: redis.url, ...quiet });
  const workers: WorkerProcess[] = [];
  try {
    for (const count of [1, 2, 4]) {
      const names = Array.from({ length: count - workers.length }, (_, i) => `bench-${workers.length + i + 1}`);
      workers.push(...(await Promise.all(names.map((name) => spawnWorker(name, ["--redis", redis.url, "--data", dataDir])))));
      await jobsPerSecond(server, 2 * count); // warm-up of the new workers
      results[`queue.redis.${count}_worker${count > 1 ? "s" : ""}.jobs_per_s`] = await jobsPerSecond(server, THROUGHPUT_JOBS);
      if (count === 1) {
        results["queue.redis.latency_ms"] = await latencyMs(server, LATENCY_JOBS);
        results["queue.redis.added_latency_ms"] = results["queue.redis.latency_ms"] - results["queue.embedded.latency_ms"];
      }
    }
  } finally {
    await Promise.allSettled(workers.map((worker) => worker.kill("SIGTERM")));
    await server.close();
    await redis.dispose();
    await rm(dataDir, { recursive: true, force: true });
  }
  return results;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const [key, value] of Object.entries(await benchQueue())) console.log(`${key.padEnd(36)} ${value.toFixed(1)}`);
}
