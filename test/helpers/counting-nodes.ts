import { defineNode } from "../../nodes/node-definition.ts";
import { NodeRegistry } from "../../nodes/registry.ts";

/**
 * Small nodes whose runs are counted, for executor, queue and server tests: a number source, an adder,
 * a slow node that reports progress, a failing node and an output node that shows nothing.
 */
export function createCountingRegistry() {
  const runs: Record<string, number> = {};
  const count = (id: string) => void (runs[id] = (runs[id] ?? 0) + 1);

  const NumberSource = defineNode({
    type: "NumberSource",
    category: "test",
    description: "emits its value",
    inputs: { value: { type: "INT", widget: "number", default: 1, min: 0, max: 100 } },
    outputs: { value: { type: "INT" } },
    async run({ value }, ctx) {
      count(ctx.nodeId);
      return { value };
    },
  });
  const Add = defineNode({
    type: "Add",
    category: "test",
    description: "adds two numbers",
    inputs: { a: { type: "INT" }, b: { type: "INT", widget: "number", default: 0 } },
    outputs: { sum: { type: "INT" } },
    async run({ a, b }, ctx) {
      count(ctx.nodeId);
      return { sum: a + b };
    },
  });
  const Slow = defineNode({
    type: "Slow",
    category: "test",
    description: "counts steps with progress, a few ms each",
    inputs: { a: { type: "INT" }, steps: { type: "INT", widget: "number", default: 5, min: 1, max: 1000 }, ms: { type: "INT", widget: "number", default: 5, min: 0, max: 1000 } },
    outputs: { value: { type: "INT" } },
    async run({ a, steps, ms }, ctx) {
      count(ctx.nodeId);
      for (let step = 1; step <= steps; step++) {
        await new Promise((resolve) => setTimeout(resolve, ms));
        ctx.progress({ value: step, max: steps });
      }
      return { value: a + steps };
    },
  });
  const Fail = defineNode({
    type: "Fail",
    category: "test",
    description: "always fails",
    inputs: { a: { type: "INT" } },
    outputs: { value: { type: "INT" } },
    async run(_inputs, ctx) {
      count(ctx.nodeId);
      throw new Error("this node always fails");
    },
  });
  const Collect = defineNode({
    type: "Collect",
    category: "test",
    description: "an output node that records the value it got",
    isOutput: true,
    inputs: { value: { type: "INT" }, label: { type: "STRING", widget: "combo", options: ["a", "b"], default: "a" } },
    outputs: {},
    async run({ value }, ctx) {
      count(ctx.nodeId);
      ctx.report({ value });
      return {};
    },
  });
  const registry = new NodeRegistry().register(NumberSource, Add, Slow, Fail, Collect);
  return { registry, runs };
}

export function workflow(nodes: Array<{ id: string; type: string; inputs?: Record<string, unknown> }>) {
  return { format: "maskflow-workflow", version: 1, nodes: nodes.map((n) => ({ inputs: {}, ...n })) };
}
