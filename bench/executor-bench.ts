/**
 * Executor overhead: a 50-node graph of cheap nodes (a chain of adders feeding an output), run cold and
 * then again unchanged (everything cached). Reports the median of several runs in milliseconds.
 */
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { defineNode } from "../nodes/node-definition.ts";
import { NodeRegistry } from "../nodes/registry.ts";
import { Executor } from "../server/executor/executor.ts";
import { DataFolders } from "../server/storage/data-folders.ts";

const Source = defineNode({
  type: "Source",
  category: "bench",
  description: "a number",
  inputs: { value: { type: "INT", widget: "number", default: 0 } },
  outputs: { value: { type: "INT" } },
  async run({ value }) {
    return { value };
  },
});
const Add = defineNode({
  type: "Add",
  category: "bench",
  description: "a + b",
  inputs: { a: { type: "INT" }, b: { type: "INT", widget: "number", default: 1 } },
  outputs: { sum: { type: "INT" } },
  async run({ a, b }) {
    return { sum: a + b };
  },
});
const Sink = defineNode({
  type: "Sink",
  category: "bench",
  description: "output",
  isOutput: true,
  inputs: { value: { type: "INT" } },
  outputs: {},
  async run({ value }, ctx) {
    ctx.report({ value });
    return {};
  },
});

function graph(nodes: number, seed: number) {
  const list: Array<{ id: string; type: string; inputs: Record<string, unknown> }> = [{ id: "0", type: "Source", inputs: { value: seed } }];
  for (let i = 1; i < nodes - 1; i++) list.push({ id: String(i), type: "Add", inputs: { a: [String(i - 1), "sum"], b: i } });
  list[1].inputs.a = ["0", "value"];
  list.push({ id: String(nodes - 1), type: "Sink", inputs: { value: [String(nodes - 2), "sum"] } });
  return { format: "maskflow-workflow", version: 1, nodes: list };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

export async function benchExecutor(runs = 30): Promise<Record<string, number>> {
  const registry = new NodeRegistry().register(Source, Add, Sink);
  const folders = await new DataFolders(await mkdtemp(path.join(os.tmpdir(), "maskflow-bench-"))).create();
  const cold: number[] = [];
  const cached: number[] = [];
  for (let run = 0; run < runs; run++) {
    // A fresh executor per run: a cold cache each time.
    const executor = new Executor({ registry, storage: folders });
    const doc = graph(50, run);
    let started = performance.now();
    const first = await executor.run(doc, { jobId: `cold-${run}` });
    cold.push(performance.now() - started);
    if (first.executed.length !== 50) throw new Error(`expected 50 nodes to run, ran ${first.executed.length}`);
    started = performance.now();
    const second = await executor.run(doc, { jobId: `warm-${run}` });
    cached.push(performance.now() - started);
    if (second.executed.length !== 0) throw new Error("the cached re-run ran nodes");
  }
  return {
    "executor: 50-node graph, cold (ms, median)": median(cold),
    "executor: per node, cold (ms)": median(cold) / 50,
    "executor: 50-node graph, cached re-run (ms, median)": median(cached),
  };
}
