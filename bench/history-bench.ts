/**
 * Recording a job in history as the history grows: the goal is a flat cost. For 10, 1,000 and 100,000 jobs
 * already in history (the store's own files, seeded through its API), the median time to record one more
 * job the way the queue does (accepted, then finished, pruning the oldest when full), and to read one page
 * of 100 deep in the list. For comparison, what the old single history.json cost per job at 10 and 1,000
 * entries (its cap): one JSON.stringify of the whole history and one atomic write.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomic } from "../server/storage/atomic-write.ts";
import { type HistoryEntry, HistoryStore } from "../server/storage/history-store.ts";

const SIZES = [10, 1_000, 100_000];
const SAMPLES = 50;
const SEED_BATCH = 200;
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function entry(workflow: unknown, index: number): HistoryEntry {
  const at = new Date(Date.UTC(2025, 0, 1) + index * 1000).toISOString();
  return {
    id: `bench-${index}`,
    status: "success",
    workflow,
    createdAt: at,
    startedAt: at,
    finishedAt: at,
    durationMs: 1200,
    outputs: { "6": { images: [{ filename: `inpaint_${index}.png`, subfolder: "", type: "output" }], values: {} } },
    executed: ["1", "2", "3", "4", "5", "6"],
    cached: [],
  };
}

const median = (samples: number[]) => [...samples].sort((a, b) => a - b)[Math.floor(samples.length / 2)];

export async function benchHistory(): Promise<Record<string, number>> {
  // The shipped default graph: what a typical job's record holds.
  const workflow: unknown = JSON.parse(await readFile(path.join(repo, "workflows", "inpaint.json"), "utf8"));
  const results: Record<string, number> = {};
  for (const size of SIZES) {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-bench-history-"));
    try {
      const seeding = new HistoryStore(path.join(dir, "history.json"), { maxEntries: size });
      await seeding.load();
      for (let start = 0; start < size; start += SEED_BATCH) {
        await Promise.all(Array.from({ length: Math.min(SEED_BATCH, size - start) }, (_, i) => seeding.add(entry(workflow, start + i))));
      }
      // A fresh start on the seeded folder, as a server would have.
      const loadStarted = performance.now();
      const store = await new HistoryStore(path.join(dir, "history.json"), { maxEntries: size }).load();
      results[`history load with ${size} jobs ms`] = performance.now() - loadStarted;
      const samples: number[] = [];
      for (let i = 0; i < SAMPLES; i++) {
        const job = entry(workflow, size + i);
        const started = performance.now();
        await store.accepted(job);
        await store.add(job);
        samples.push(performance.now() - started);
      }
      results[`history record 1 job with ${size} ms`] = median(samples);
      const pageStarted = performance.now();
      const page = await store.page(Math.max(0, size - 100), 100);
      results[`history page of 100 at offset ${Math.max(0, size - 100)} ms`] = performance.now() - pageStarted;
      if (page.entries.length !== Math.min(100, size)) throw new Error(`the page held ${page.entries.length} entries`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  for (const size of [10, 1_000]) {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-bench-history-old-"));
    try {
      const entries = Array.from({ length: size }, (_, i) => entry(workflow, i));
      const samples: number[] = [];
      for (let i = 0; i < 10; i++) {
        const started = performance.now();
        await writeFileAtomic(path.join(dir, "history.json"), JSON.stringify({ version: 1, entries }));
        samples.push(performance.now() - started);
      }
      results[`old history.json record 1 job with ${size} ms`] = median(samples);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  return results;
}
