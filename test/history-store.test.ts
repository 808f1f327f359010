import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CUT_OFF_MESSAGE, type HistoryEntry, HistoryStore } from "../server/storage/history-store.ts";
import type { RunningServer } from "../server/maskflow-server.ts";
import { ensureTinyModels } from "./fixtures/make-tiny-models.ts";
import { createCountingRegistry, workflow } from "./helpers/counting-nodes.ts";
import { RecordingLog } from "./helpers/recording-log.ts";
import { api, startTestServer } from "./helpers/test-server.ts";

const repo = path.resolve(import.meta.dirname, "..");
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A store on a fresh folder; `opened` lists every record file it reads. */
async function openStore(dir: string, options: { maxEntries?: number; maxRecordBytes?: number; keepUnfinished?: boolean } = {}) {
  const opened: string[] = [];
  const log = new RecordingLog();
  const store = await new HistoryStore(path.join(dir, "history.json"), {
    maxEntries: options.maxEntries,
    maxRecordBytes: options.maxRecordBytes,
    log,
    readRecordFile: (file) => {
      opened.push(path.basename(file));
      return readFile(file, "utf8");
    },
  }).load({ keepUnfinished: options.keepUnfinished });
  return { store, opened, log };
}

const T0 = Date.parse("2025-01-01T00:00:00.000Z");
/** A record's file name starts with its stamp, 15 digits. */
const name = (stamp: number) => String(stamp).padStart(15, "0");
function finished(index: number, extra: Partial<HistoryEntry> = {}): HistoryEntry {
  const at = new Date(T0 + index * 1000).toISOString();
  return {
    id: `job-${index}`,
    status: "success",
    workflow: { format: "maskflow-workflow", version: 1, nodes: [{ id: "1", type: "Collect", inputs: { value: index } }] },
    createdAt: at,
    startedAt: at,
    finishedAt: at,
    durationMs: 3,
    outputs: { "1": { images: [], values: { value: index } } },
    executed: ["1"],
    cached: [],
    ...extra,
  };
}

describe("history store: a file per job", () => {
  it("records a job when accepted and replaces its record when it ends; one file per job", async () => {
    const dir = await tempDir("maskflow-history-");
    const { store } = await openStore(dir);
    await store.accepted({ id: "a", clientId: "me", workflow: { nodes: [] }, createdAt: new Date(T0).toISOString() });
    expect(await readdir(store.dir)).toEqual([`${name(T0)}-a.queued.json`]);
    // Not finished: not listed, not readable, not in the synchronous cache.
    expect(await store.page(0, 10)).toEqual({ entries: [], total: 0 });
    expect(await store.read("a")).toBeUndefined();
    const adding = store.add({ ...finished(0), id: "a", clientId: "me" });
    // Readable from the moment it is handed over (a client told over the WebSocket asks at once), before its file is written.
    expect(await store.read("a")).toMatchObject({ id: "a", status: "success" });
    expect((await store.page(0, 10)).entries.map((entry) => entry.id)).toEqual(["a"]);
    await adding;
    expect(await readdir(store.dir)).toEqual([`${name(T0)}-a.success.json`]);
    expect(store.get("a")).toMatchObject({ id: "a", status: "success" });
    expect((await store.page(0, 10)).entries.map((entry) => entry.id)).toEqual(["a"]);
    // A job that finished before its queued record was asked for keeps its finished record.
    await store.accepted({ id: "a", workflow: {}, createdAt: new Date(T0).toISOString() });
    expect(await readdir(store.dir)).toEqual([`${name(T0)}-a.success.json`]);
  });

  it("at the next load, jobs a crash left queued are cut off; cancelled ones leave no record", async () => {
    const dir = await tempDir("maskflow-history-crash-");
    const { store } = await openStore(dir);
    for (const id of ["kept", "cancelled", "done"]) await store.accepted({ id, workflow: { id }, createdAt: new Date().toISOString() });
    await store.discardQueued(["cancelled"]);
    await store.add({ ...finished(1), id: "done" });
    // No close: the process is gone, as after a SIGKILL.
    const { store: next } = await openStore(dir);
    const { entries } = await next.page(0, 10);
    expect(entries.map((entry) => [entry.id, entry.status])).toEqual([
      ["done", "success"],
      ["kept", "error"],
    ]);
    expect(entries[1]).toMatchObject({ workflow: { id: "kept" }, error: { message: CUT_OFF_MESSAGE }, durationMs: 0 });
    expect(next.unfinishedIds()).toEqual([]);
    // A Redis queue keeps them: its jobs outlive the server.
    await next.accepted({ id: "in-redis", workflow: {}, createdAt: new Date().toISOString() });
    const { store: redisSide } = await openStore(dir, { keepUnfinished: true });
    expect(redisSide.unfinishedIds()).toEqual(["in-redis"]);
  });

  it("lists pages of 10,000 jobs newest first, opening only the page's files; the index is built without opening any", async () => {
    const dir = await tempDir("maskflow-history-10k-");
    const { store } = await openStore(dir, { maxEntries: 20_000 });
    const count = 10_000;
    for (let start = 0; start < count; start += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, i) => store.add(finished(start + i))));
    }
    const { store: reloaded, opened } = await openStore(dir, { maxEntries: 20_000 });
    expect(opened).toEqual([]);
    const first = await reloaded.page(0, 100);
    expect(first.total).toBe(count);
    expect(first.entries.map((entry) => entry.id)).toEqual(Array.from({ length: 100 }, (_, i) => `job-${count - 1 - i}`));
    expect(opened).toHaveLength(100);
    opened.length = 0;
    const deep = await reloaded.page(9_900, 100);
    expect(deep.entries.map((entry) => entry.id)).toEqual(Array.from({ length: 100 }, (_, i) => `job-${99 - i}`));
    expect(deep.entries[99]).toEqual(finished(0));
    expect(opened).toHaveLength(100);
    opened.length = 0;
    expect((await reloaded.page(9_995, 100)).entries.map((entry) => entry.id)).toEqual(["job-4", "job-3", "job-2", "job-1", "job-0"]);
    expect((await reloaded.page(count, 100)).entries).toEqual([]);
    expect(opened).toHaveLength(5);
  }, 120_000);

  it("keeps a record with a 20 MB literal under its size limit: outputs, status and error stay, the workflow gives way", async () => {
    const dir = await tempDir("maskflow-history-big-");
    const { store } = await openStore(dir);
    const huge = "x".repeat(20 * 1024 * 1024);
    await store.accepted({ id: "big", workflow: { description: huge }, createdAt: new Date(T0).toISOString() });
    await store.add(finished(0, { id: "big", workflow: { description: huge }, status: "error", error: { node: "1", message: "it failed" } }));
    await store.add(finished(1));
    const files = await readdir(store.dir);
    expect(files.sort()).toEqual([`${name(T0)}-big.error.json`, `${name(T0 + 1000)}-job-1.success.json`]);
    expect((await stat(path.join(store.dir, files[0]))).size).toBeLessThanOrEqual(store.maxRecordBytes);
    const { store: reloaded } = await openStore(dir);
    const big = await reloaded.read("big");
    expect(big).toMatchObject({ status: "error", workflow: null, error: { message: "it failed" }, outputs: { "1": { values: { value: 0 } } } });
    expect(big?.omitted).toMatch(/^the workflow: the record was 20\.0 MB as JSON and a history record keeps at most 8\.0 MB$/);
    expect((await reloaded.read("job-1"))?.workflow).toEqual(finished(1).workflow);
  });

  it("keeps at most maxEntries records, dropping the oldest finished ones and never a queued one", async () => {
    const dir = await tempDir("maskflow-history-prune-");
    const { store } = await openStore(dir, { maxEntries: 3 });
    await store.accepted({ id: "waiting", workflow: {}, createdAt: new Date(T0 - 1000).toISOString() });
    for (let i = 0; i < 6; i++) await store.add(finished(i));
    expect((await readdir(store.dir)).sort()).toEqual([
      `${name(T0 - 1000)}-waiting.queued.json`,
      `${name(T0 + 4000)}-job-4.success.json`,
      `${name(T0 + 5000)}-job-5.success.json`,
    ]);
    await store.delete(["job-5", "waiting"]);
    expect(store.unfinishedIds()).toEqual(["waiting"]);
    await store.clear();
    expect(await readdir(store.dir)).toEqual([`${name(T0 - 1000)}-waiting.queued.json`]);
  });

  it("lists an unreadable record as an error instead of failing; a stray file does not stop a load", async () => {
    const dir = await tempDir("maskflow-history-corrupt-");
    const { store } = await openStore(dir);
    for (let i = 0; i < 3; i++) await store.add(finished(i));
    await writeFile(path.join(store.dir, `${name(T0 + 1000)}-job-1.success.json`), '{"id": "job-1", "status": "succ');
    await writeFile(path.join(store.dir, "notes.txt"), "not a record");
    await writeFile(path.join(store.dir, `.${name(T0 + 9000)}-job-9.success.json.abc123.tmp`), "a write cut off by a crash");
    const { store: reloaded, log } = await openStore(dir);
    expect(log.text("warn")).toBe(`history: ignored ${path.join(reloaded.dir, "notes.txt")}: not a record's name (<stamp>-<job id>.<status>.json)`);
    const { entries } = await reloaded.page(0, 10);
    expect(entries.map((entry) => [entry.id, entry.status])).toEqual([
      ["job-2", "success"],
      ["job-1", "error"],
      ["job-0", "success"],
    ]);
    expect(entries[1].error?.message).toMatch(new RegExp(`^this job's history record \\(history/${name(T0 + 1000)}-job-1\\.success\\.json\\) could not be read: .*JSON`));
    expect((await readdir(reloaded.dir)).filter((name) => name.startsWith("."))).toEqual([]);
  });

  it("migrates an old history.json once, keeping its order, and moves an unreadable one aside", async () => {
    const dir = await tempDir("maskflow-history-migrate-");
    // The old file: newest last, a job created earlier may have finished later.
    const old = [finished(0), finished(5), finished(3), { not: "an entry" }];
    await writeFile(path.join(dir, "history.json"), JSON.stringify({ version: 1, entries: old }));
    const { store, log } = await openStore(dir);
    expect((await store.page(0, 10)).entries.map((entry) => entry.id)).toEqual(["job-3", "job-5", "job-0"]);
    expect(await store.read("job-5")).toEqual(finished(5));
    expect((await readdir(dir)).sort()).toEqual(["history", "history.json.migrated"]);
    expect(log.text("info")).toBe(
      `history: moved 3 job(s) from ${path.join(dir, "history.json")} to ${store.dir} (the old file is kept as history.json.migrated); left out 1 item that is not a history entry`,
    );
    // Once: the next load finds nothing to move.
    const { store: again } = await openStore(dir);
    expect((await again.page(0, 10)).total).toBe(3);

    const broken = await tempDir("maskflow-history-migrate-broken-");
    await writeFile(path.join(broken, "history.json"), "{ truncated");
    const { store: fresh, log: brokenLog } = await openStore(broken);
    expect((await fresh.page(0, 10)).total).toBe(0);
    expect((await readdir(broken)).sort()).toEqual(["history", "history.json.unreadable"]);
    expect(brokenLog.text("warn")).toMatch(/history\.json could not be read \(.*JSON.*\); moved it to .*history\.json\.unreadable and started afresh$/);
  });
});

describe("history over HTTP", () => {
  const servers: RunningServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });
  async function start(options: Parameters<typeof startTestServer>[0] = {}) {
    const server = await startTestServer({ registry: createCountingRegistry().registry, ...options });
    servers.push(server);
    return server;
  }
  const cheap = (value: number, description?: string) => ({
    ...workflow([
      { id: "1", type: "NumberSource", inputs: { value } },
      { id: "2", type: "Collect", inputs: { value: ["1", "value"] } },
    ]),
    ...(description === undefined ? {} : { description }),
  });
  const slow = () =>
    workflow([
      { id: "1", type: "NumberSource" },
      { id: "2", type: "Slow", inputs: { a: ["1", "value"], steps: 200, ms: 5 } },
      { id: "3", type: "Collect", inputs: { value: ["2", "value"] } },
    ]);

  it("pages with max_items and offset, newest first; a bad value is a 400 naming the field and its range", async () => {
    const server = await start();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { body } = await api(server, "POST", "/api/prompt", { workflow: cheap(i) });
      await server.queue.waitFor(body.id);
      ids.push(body.id);
    }
    const newestFirst = [...ids].reverse();
    const all = await api(server, "GET", "/api/history");
    expect(all.body.map((entry: HistoryEntry) => entry.id)).toEqual(newestFirst);
    expect(all.headers.get("x-total-count")).toBe("5");
    expect((await api(server, "GET", "/api/history?max_items=2&offset=1")).body.map((entry: HistoryEntry) => entry.id)).toEqual(newestFirst.slice(1, 3));
    expect((await api(server, "GET", "/api/history?offset=5")).body).toEqual([]);
    for (const [query, message] of [
      ["max_items=0", "max_items: max_items must be from 1 to 1000"],
      ["max_items=1001", "max_items: max_items must be from 1 to 1000"],
      ["max_items=ten", "max_items: max_items must be a whole number from 1 to 1000"],
      ["offset=-1", `offset: offset must be a whole number from 0 to ${Number.MAX_SAFE_INTEGER}`],
      ["offset=1&offset=2", `offset: offset must be given once, as a whole number from 0 to ${Number.MAX_SAFE_INTEGER}`],
    ]) {
      const response = await api(server, "GET", `/api/history?${query}`);
      expect(response.status, query).toBe(400);
      expect(response.body.error.message, query).toBe(`query is invalid: ${message}`);
    }
  });

  it("a job whose literal makes its record pass 8 MB is stored bounded; the server keeps answering and the next jobs persist", async () => {
    const server = await start();
    // The door allows 4,000,000 characters of text; as UTF-8, 3.9 million "€" are 11.2 MB.
    const big = await api(server, "POST", "/api/prompt", { workflow: cheap(1, "€".repeat(3_900_000)) });
    expect(big.status, JSON.stringify(big.body).slice(0, 500)).toBe(200);
    expect((await server.queue.waitFor(big.body.id)).status).toBe("success");
    const stored = await api(server, "GET", `/api/history/${big.body.id}`);
    expect(stored.body).toMatchObject({ status: "success", workflow: null, outputs: { "2": { values: { value: 1 } } } });
    expect(stored.body.omitted).toMatch(/^the workflow: the record was 11\.2 MB as JSON and a history record keeps at most 8\.0 MB$/);
    expect((await api(server, "GET", "/api/system")).status).toBe(200);
    const next = await api(server, "POST", "/api/prompt", { workflow: cheap(2) });
    await server.queue.waitFor(next.body.id);
    const dataDir = server.folders.root;
    await server.close();
    servers.splice(0);
    const again = await start({ dataDir });
    const listed = await api(again, "GET", "/api/history");
    expect(listed.status).toBe(200);
    expect(listed.body.map((entry: HistoryEntry) => [entry.id, entry.status])).toEqual([
      [next.body.id, "success"],
      [big.body.id, "success"],
    ]);
  });

  it("a clean stop leaves jobs that never ran in history as cut off; a cancelled job leaves none", async () => {
    const server = await start();
    const running = await api(server, "POST", "/api/prompt", { workflow: slow() });
    const waiting = await api(server, "POST", "/api/prompt", { workflow: cheap(1) });
    const cancelled = await api(server, "POST", "/api/prompt", { workflow: cheap(2) });
    expect((await api(server, "POST", "/api/queue", { delete: [cancelled.body.id] })).body.deleted).toEqual([cancelled.body.id]);
    const dataDir = server.folders.root;
    await server.close();
    servers.splice(0);
    const again = await start({ dataDir });
    const listed = (await api(again, "GET", "/api/history")).body as HistoryEntry[];
    expect(listed.map((entry) => [entry.id, entry.status, entry.error?.message])).toEqual([
      [waiting.body.id, "error", CUT_OFF_MESSAGE],
      [running.body.id, "interrupted", expect.any(String)],
    ]);
  });
});

describe("maskflow serve killed mid-queue (SIGKILL)", () => {
  /** `maskflow serve` as a user starts it, on a free port; resolves with its URL once it listens. */
  async function serve(dataDir: string, modelDir: string): Promise<{ url: string; child: ChildProcessWithoutNullStreams; output: () => string }> {
    const env = { ...process.env };
    for (const name of ["MASKFLOW_HOST", "MASKFLOW_PORT", "MASKFLOW_DATA_DIR", "MASKFLOW_REDIS_URL", "MASKFLOW_API_KEYS"]) delete env[name];
    const child = spawn(process.execPath, [path.join(repo, "bin/maskflow.js"), "serve", "--data", dataDir, "--port", "0", "--model", modelDir], { env });
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await new Promise((resolve) => child.once("close", resolve));
      }
    });
    let output = "";
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`maskflow serve did not start within 60 s:\n${output}`)), 60_000);
      const look = (chunk: Buffer) => {
        output += chunk;
        const match = /Maskflow is running at (http:\/\/\S+?)\/\n/.exec(output);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      };
      child.stdout.on("data", look);
      child.stderr.on("data", look);
      child.once("close", (code) => {
        clearTimeout(timer);
        reject(new Error(`maskflow serve exited (${code}) before listening:\n${output}`));
      });
    });
    return { url, child, output: () => output };
  }

  /** Tiny-model inpainting: its size and steps set how long a job takes. */
  const inpaint = (seed: number) => ({
    format: "maskflow-workflow",
    version: 1,
    nodes: [
      { id: "1", type: "LoadImage", inputs: { image: "examples/room.png" } },
      { id: "2", type: "LoadMask", inputs: { image: "examples/room-mask.png", channel: "luminance" } },
      { id: "3", type: "Prompt", inputs: { positive: "a plant", negative: "" } },
      { id: "4", type: "Scheduler", inputs: { scheduler: "DDIM", steps: 150, guidance: 7.5, strength: 1, seed } },
      {
        id: "5",
        type: "Inpaint",
        inputs: { image: ["1", "image"], mask: ["2", "mask"], prompt: ["3", "prompt"], scheduler: ["4", "scheduler"], model: "", width: 256, height: 256 },
      },
      { id: "6", type: "SaveImage", inputs: { images: ["5", "images"], filename_prefix: "killed" } },
    ],
  });

  it("every accepted job is in history after the restart, finished or marked as cut off", async () => {
    const tinyModel = (await ensureTinyModels()).fp32;
    const dataDir = path.join(await tempDir("maskflow-sigkill-"), "data");
    const first = await serve(dataDir, tinyModel);
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const response = await api(first, "POST", "/api/prompt", { workflow: inpaint(i) });
      expect(response.status, JSON.stringify(response.body)).toBe(200);
      ids.push(response.body.id);
    }
    first.child.kill("SIGKILL");
    await new Promise((resolve) => first.child.once("close", resolve));

    const second = await serve(dataDir, tinyModel);
    const listed = await api(second, "GET", "/api/history?max_items=1000");
    expect(listed.status).toBe(200);
    const byId = new Map((listed.body as HistoryEntry[]).map((entry) => [entry.id, entry]));
    for (const id of ids) {
      const entry = byId.get(id);
      expect(entry, `job ${id} is missing from history`).toBeDefined();
      if (entry?.status !== "success") expect(entry).toMatchObject({ status: "error", error: { message: CUT_OFF_MESSAGE } });
    }
    // Six jobs of 150 steps cannot all have finished in the moment between the last answer and the kill.
    expect([...byId.values()].filter((entry) => entry.error?.message === CUT_OFF_MESSAGE).length).toBeGreaterThan(0);
    expect(byId.size).toBe(ids.length);
    second.child.kill("SIGTERM");
    await new Promise((resolve) => second.child.once("close", resolve));
  }, 180_000);
});
