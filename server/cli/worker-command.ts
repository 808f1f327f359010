/** `maskflow worker --redis URL`: runs jobs from a `maskflow serve --redis URL` server's queue. */
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { createEngines } from "../engines/create-engines.ts";
import { parseRedisUrl } from "../queue/redis-connection.ts";
import { SettingsStore, segmindKeyFrom } from "../storage/settings-store.ts";
import { startWorker } from "../worker/maskflow-worker.ts";
import type { CliIo } from "./cli-io.ts";

export const WORKER_USAGE =
  "worker --redis URL [--concurrency 1] [--data DIR] [--model DIR] [--device cpu] [--name NAME] " +
  "[--lock-duration 30000] [--stalled-interval 30000]   run queued jobs (scale-out with Redis)";

function wholeNumber(io: CliIo, flag: string, text: string, min: number): number | undefined {
  const value = Number(text);
  if (Number.isInteger(value) && value >= min) return value;
  io.stderr.write(`maskflow worker: --${flag} must be a whole number ≥ ${min}, got "${text}"\n`);
  return undefined;
}

export async function workerCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      redis: { type: "string", default: process.env.MASKFLOW_REDIS_URL },
      concurrency: { type: "string", default: process.env.MASKFLOW_WORKER_CONCURRENCY ?? "1" },
      data: { type: "string", default: process.env.MASKFLOW_DATA_DIR ?? "data" },
      model: { type: "string" },
      device: { type: "string" },
      name: { type: "string" },
      "lock-duration": { type: "string", default: "30000" },
      "stalled-interval": { type: "string", default: "30000" },
    },
  });
  if (!values.redis) {
    io.stderr.write("maskflow worker: give the queue's Redis with --redis redis://HOST:PORT (or MASKFLOW_REDIS_URL)\n");
    return 2;
  }
  parseRedisUrl(values.redis);
  const concurrency = wholeNumber(io, "concurrency", values.concurrency, 1);
  const lockDurationMs = wholeNumber(io, "lock-duration", values["lock-duration"], 100);
  const stalledIntervalMs = wholeNumber(io, "stalled-interval", values["stalled-interval"], 100);
  if (concurrency === undefined || lockDurationMs === undefined || stalledIntervalMs === undefined) return 2;

  const name = values.name ?? `${os.hostname()}:${process.pid}`;
  // The shared data folder carries the server's settings, the Segmind key among them.
  const settings = await new SettingsStore(path.join(path.resolve(values.data), "settings.json"), { followDisk: true }).load();
  const engines = await createEngines({ modelDir: values.model, device: values.device, segmind: { apiKey: segmindKeyFrom(settings) } });
  const worker = await startWorker({
    redisUrl: values.redis,
    dataDir: values.data,
    concurrency,
    name,
    lockDurationMs,
    stalledIntervalMs,
    engines: engines.nodeEngines,
    log: (line) => io.stdout.write(`maskflow worker ${name}: ${line}\n`),
  });
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  io.stdout.write(`maskflow worker ${name}: stopping after ${worker.running().length} running job(s)…\n`);
  await worker.close();
  await engines.dispose();
  return 0;
}
