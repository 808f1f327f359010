import { describe, expect, it } from "vitest";
import type { ExecutionEvent } from "../server/executor/execution-event.ts";
import { defineNode } from "../nodes/node-definition.ts";
import { Executor } from "../server/executor/executor.ts";
import { JobInterruptedError } from "../server/executor/job-interrupted.ts";
import { createCountingRegistry, workflow } from "./helpers/counting-nodes.ts";
import { createTestContext } from "./helpers/node-context.ts";

async function setup() {
  const { registry, runs } = createCountingRegistry();
  const { folders } = await createTestContext();
  return { runs, executor: new Executor({ registry, storage: folders }) };
}

const chain = (value = 2, b = 3) =>
  workflow([
    { id: "src", type: "NumberSource", inputs: { value } },
    { id: "add", type: "Add", inputs: { a: ["src", "value"], b } },
    { id: "unused", type: "Add", inputs: { a: ["src", "value"] } },
    { id: "out", type: "Collect", inputs: { value: ["add", "sum"] } },
  ]);

describe("executor", () => {
  it("runs only what output nodes need, in topological order", async () => {
    const { executor, runs } = await setup();
    // Output listed first, sources last: order must come from the links, not the document.
    const doc = chain();
    doc.nodes.reverse();
    const result = await executor.run(doc, { jobId: "j1" });
    expect(result.status).toBe("success");
    expect(result.executed).toEqual(["src", "add", "out"]);
    expect(runs.unused).toBeUndefined();
    expect(result.outputs.out.values).toEqual({ value: 5 });
  });

  it("re-runs nothing for an unchanged graph and only the changed node and its dependants after an edit", async () => {
    const { executor, runs } = await setup();
    await executor.run(chain(2, 3), { jobId: "j1" });
    const again = await executor.run(chain(2, 3), { jobId: "j2" });
    expect(again.executed).toEqual([]);
    expect(again.cached).toEqual(["src", "add", "out"]);
    expect(again.outputs.out.values).toEqual({ value: 5 });
    expect(runs).toEqual({ src: 1, add: 1, out: 1 });

    const edited = await executor.run(chain(2, 10), { jobId: "j3" });
    expect(edited.executed).toEqual(["add", "out"]);
    expect(edited.outputs.out.values).toEqual({ value: 12 });
    expect(runs).toEqual({ src: 1, add: 2, out: 2 });
  });

  it("bounds the cache by memory", async () => {
    const { registry } = createCountingRegistry();
    const { folders } = await createTestContext();
    const executor = new Executor({ registry, storage: folders, cacheBytes: 300 });
    for (let value = 0; value < 20; value++) await executor.run(chain(value), { jobId: `j${value}` });
    expect(executor.cache.bytes).toBeLessThanOrEqual(300);
    expect(executor.cache.size).toBeGreaterThan(0);
  });

  it("does not re-run what only feeds cached nodes, even when it fell out of the cache", async () => {
    const { registry, runs } = createCountingRegistry();
    const Big = defineNode({
      type: "Big",
      category: "test",
      description: "an output too large for the cache",
      inputs: {},
      outputs: { value: { type: "INT" }, bulk: { type: "STRING" } },
      async run(_inputs, ctx) {
        runs[ctx.nodeId] = (runs[ctx.nodeId] ?? 0) + 1;
        return { value: 7, bulk: "x", padding: new Uint8Array(10_000) };
      },
    });
    registry.register(Big);
    const { folders } = await createTestContext();
    const executor = new Executor({ registry, storage: folders, cacheBytes: 5_000 });
    const doc = workflow([
      { id: "big", type: "Big" },
      { id: "add", type: "Add", inputs: { a: ["big", "value"], b: 1 } },
      { id: "out", type: "Collect", inputs: { value: ["add", "sum"] } },
    ]);
    await executor.run(doc, { jobId: "j1" });
    const again = await executor.run(doc, { jobId: "j2" });
    expect(again.executed).toEqual([]);
    expect(again.cached).toEqual(["add", "out"]);
    expect(runs).toEqual({ big: 1, add: 1, out: 1 });
  });

  it("emits events in order", async () => {
    const { executor } = await setup();
    const events: ExecutionEvent[] = [];
    const doc = workflow([
      { id: "src", type: "NumberSource" },
      { id: "slow", type: "Slow", inputs: { a: ["src", "value"], steps: 3, ms: 0 } },
      { id: "out", type: "Collect", inputs: { value: ["slow", "value"] } },
    ]);
    await executor.run(doc, { jobId: "j", onEvent: (e) => events.push(e) });
    expect(events.map((e) => e.type + ("node" in e && e.node ? `:${e.node}` : ""))).toEqual([
      "execution_start",
      "execution_cached",
      "executing:src",
      "executed:src",
      "executing:slow",
      "progress:slow",
      "progress:slow",
      "progress:slow",
      "executed:slow",
      "executing:out",
      "executed:out",
      "execution_success",
    ]);
  });

  it("reports a failing node with its id and message, and runs nothing after it", async () => {
    const { executor, runs } = await setup();
    const doc = workflow([
      { id: "src", type: "NumberSource" },
      { id: "bad", type: "Fail", inputs: { a: ["src", "value"] } },
      { id: "out", type: "Collect", inputs: { value: ["bad", "value"] } },
    ]);
    const events: ExecutionEvent[] = [];
    const result = await executor.run(doc, { jobId: "j", onEvent: (e) => events.push(e) });
    expect(result.status).toBe("error");
    expect(result.error).toMatchObject({ node: "bad", nodeType: "Fail", message: "this node always fails" });
    expect(events.at(-1)).toMatchObject({ type: "execution_error", node: "bad" });
    expect(runs.out).toBeUndefined();
  });

  it("reports every validation problem before running anything", async () => {
    const { executor, runs } = await setup();
    const events: ExecutionEvent[] = [];
    const result = await executor.run(workflow([{ id: "1", type: "Collect", inputs: {} }]), { jobId: "j", onEvent: (e) => events.push(e) });
    expect(result.status).toBe("error");
    expect(events.at(-1)).toMatchObject({ type: "execution_error", problems: [expect.objectContaining({ nodeId: "1", input: "value" })] });
    expect(runs).toEqual({});
  });

  it("stops a running node at its next progress check when interrupted", async () => {
    const { executor, runs } = await setup();
    const abort = new AbortController();
    const events: ExecutionEvent[] = [];
    const doc = workflow([
      { id: "src", type: "NumberSource" },
      { id: "slow", type: "Slow", inputs: { a: ["src", "value"], steps: 1000, ms: 2 } },
      { id: "out", type: "Collect", inputs: { value: ["slow", "value"] } },
    ]);
    const result = await executor.run(doc, {
      jobId: "j",
      signal: abort.signal,
      onEvent: (event) => {
        events.push(event);
        if (event.type === "progress" && event.value === 3) abort.abort(new JobInterruptedError());
      },
    });
    expect(result.status).toBe("interrupted");
    expect(events.filter((e) => e.type === "progress")).toHaveLength(3);
    expect(events.at(-1)).toMatchObject({ type: "execution_interrupted", node: "slow" });
    expect(runs.out).toBeUndefined();
  });
});
