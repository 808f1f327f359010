import { describe, expect, it } from "vitest";
import { defineNode } from "../nodes/node-definition.ts";
import { NodeRegistry } from "../nodes/registry.ts";
import { validateWorkflow } from "../server/workflow/validate-workflow.ts";
import { createCountingRegistry, workflow } from "./helpers/counting-nodes.ts";

const { registry } = createCountingRegistry();

function problems(doc: unknown) {
  const result = validateWorkflow(doc, registry, { requireOutputNode: true });
  return result.ok ? [] : result.problems;
}

const good = () =>
  workflow([
    { id: "1", type: "NumberSource", inputs: { value: 2 } },
    { id: "2", type: "Add", inputs: { a: ["1", "value"], b: 3 } },
    { id: "3", type: "Collect", inputs: { value: ["2", "sum"] } },
  ]);

describe("workflow validation", () => {
  it("accepts a good workflow", () => {
    expect(problems(good())).toEqual([]);
  });

  it("rejects another format or version, naming the field", () => {
    expect(problems({ ...good(), format: "comfyui" })[0].message).toMatch(/format.*maskflow-workflow/);
    expect(problems({ ...good(), version: 2 })[0].message).toMatch(/version.*1/);
  });

  it("rejects unknown fields in the document and in a node", () => {
    const doc = { ...good(), extra: true };
    expect(problems(doc)[0]).toMatchObject({ code: "invalid_document" });
    expect(problems(doc)[0].message).toMatch(/extra/);
    const nodeExtra = good();
    (nodeExtra.nodes[1] as Record<string, unknown>).colour = "red";
    expect(problems(nodeExtra)[0]).toMatchObject({ code: "invalid_document", nodeId: "2" });
  });

  it("reports an unknown node type with the known types", () => {
    const doc = good();
    doc.nodes[0].type = "Nope";
    const [problem] = problems(doc);
    expect(problem).toMatchObject({ code: "unknown_node_type", nodeId: "1" });
    expect(problem.message).toMatch(/NumberSource/);
  });

  it("reports a missing required input", () => {
    const doc = good();
    doc.nodes[1].inputs = { b: 1 };
    expect(problems(doc)).toEqual([expect.objectContaining({ code: "missing_input", nodeId: "2", input: "a" })]);
  });

  it("reports an unknown input", () => {
    const doc = good();
    doc.nodes[1].inputs = { ...doc.nodes[1].inputs, c: 1 };
    expect(problems(doc)).toEqual([expect.objectContaining({ code: "unknown_input", nodeId: "2", input: "c" })]);
  });

  it("reports links to a missing node and to a missing output", () => {
    const doc = good();
    doc.nodes[1].inputs = { a: ["9", "value"] };
    doc.nodes[2].inputs = { value: ["1", "nope"] };
    expect(problems(doc)).toEqual([
      expect.objectContaining({ code: "missing_link_node", nodeId: "2", input: "a" }),
      expect.objectContaining({ code: "missing_link_output", nodeId: "3", input: "value" }),
    ]);
  });

  it("reports a socket type mismatch", () => {
    const doc = good();
    doc.nodes[1].inputs = { a: "one" };
    expect(problems(doc)[0]).toMatchObject({ code: "invalid_value", nodeId: "2", input: "a" });
    expect(problems(doc)[0].message).toMatch(/whole number/);
    const collectGetsString = workflow([
      { id: "1", type: "NumberSource" },
      { id: "2", type: "Collect", inputs: { value: ["1", "value"], label: ["1", "value"] } },
    ]);
    expect(problems(collectGetsString)).toEqual([expect.objectContaining({ code: "type_mismatch", nodeId: "2", input: "label" })]);
  });

  it("reports values out of range and not among the options", () => {
    const doc = good();
    doc.nodes[0].inputs = { value: 101 };
    doc.nodes[2].inputs = { value: ["2", "sum"], label: "c" };
    const found = problems(doc);
    expect(found[0]).toMatchObject({ code: "out_of_range", nodeId: "1", input: "value" });
    expect(found[0].message).toMatch(/0 to 100/);
    expect(found[1]).toMatchObject({ code: "not_in_options", nodeId: "3", input: "label" });
    expect(found[1].message).toMatch(/"a", "b"/);
  });

  it("reports a cycle, including a node linked to itself", () => {
    const doc = workflow([
      { id: "1", type: "Add", inputs: { a: ["2", "sum"] } },
      { id: "2", type: "Add", inputs: { a: ["1", "sum"] } },
      { id: "3", type: "Add", inputs: { a: ["3", "sum"] } },
      { id: "4", type: "Collect", inputs: { value: ["2", "sum"] } },
    ]);
    const cycles = problems(doc).filter((p) => p.code === "cycle");
    expect(cycles).toHaveLength(2);
    expect(cycles.map((c) => c.message).join("\n")).toMatch(/3 → 3/);
  });

  it("reports every problem at once", () => {
    const doc = workflow([
      { id: "1", type: "Nope" },
      { id: "2", type: "Add", inputs: {} },
      { id: "3", type: "Collect", inputs: { value: ["2", "sum"], label: "z" } },
    ]);
    expect(problems(doc).map((p) => p.code)).toEqual(["unknown_node_type", "missing_input", "not_in_options"]);
  });

  it("requires an output node to run", () => {
    expect(problems(workflow([{ id: "1", type: "NumberSource" }]))).toEqual([expect.objectContaining({ code: "no_output_node" })]);
  });

  describe("a node's own check", () => {
    const seen: Array<Readonly<Record<string, unknown>>> = [];
    const Checked = defineNode({
      type: "Checked",
      category: "test",
      description: "an output node that checks its inputs",
      isOutput: true,
      inputs: {
        size: { type: "INT", widget: "number", default: 512, min: 64, max: 2048 },
        seed: { type: "SEED", widget: "seed", default: 0 },
        file: { type: "STRING", widget: "text", default: "" },
      },
      outputs: {},
      check(inputs, ctx) {
        seen.push(inputs);
        const found: { input: "size" | "file"; message: string }[] = [];
        if (inputs.size !== undefined && inputs.size % 8 !== 0) found.push({ input: "size", message: `is ${inputs.size}; a multiple of 8` });
        if (inputs.file && ctx.files) found.push({ input: "file", message: `looked in ${ctx.files.inputFolders.join(", ")}` });
        return found;
      },
      async run() {
        return {};
      },
    });
    const checkedRegistry = new NodeRegistry().register(Checked, ...registry.types().map((type) => registry.get(type)!));
    const files = { inputPath: (name: string) => `/nowhere/${name}`, inputFolders: ["/nowhere"] };

    it("sees literals with defaults applied and seeds as bigint, never linked inputs; its problems carry node and input", () => {
      seen.length = 0;
      const doc = workflow([
        { id: "1", type: "NumberSource", inputs: { value: 3 } },
        { id: "2", type: "Checked", inputs: { size: 513, seed: "18446744073709551615" } },
        { id: "3", type: "Checked", inputs: { size: ["1", "value"], file: "a.png" } },
      ]);
      const result = validateWorkflow(doc, checkedRegistry, { requireOutputNode: true, files });
      expect(seen).toEqual([
        { size: 513, seed: 18446744073709551615n, file: "" },
        { seed: 0n, file: "a.png" },
      ]);
      expect(result.ok ? [] : result.problems).toEqual([
        { code: "input_check", nodeId: "2", input: "size", message: "is 513; a multiple of 8" },
        { code: "input_check", nodeId: "3", input: "file", message: "looked in /nowhere" },
      ]);
    });

    it("is not asked when a literal already failed the schema, and checks files only when told where to look", () => {
      seen.length = 0;
      const outOfRange = workflow([{ id: "1", type: "Checked", inputs: { size: 9999, file: "a.png" } }]);
      const result = validateWorkflow(outOfRange, checkedRegistry, { files });
      expect(result.ok ? [] : result.problems.map((p) => p.code)).toEqual(["out_of_range"]);
      expect(seen).toEqual([]);
      const noFiles = validateWorkflow(workflow([{ id: "1", type: "Checked", inputs: { file: "a.png" } }]), checkedRegistry);
      expect(noFiles.ok).toBe(true);
    });
  });
});
