import { readFile } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { afterEach, describe, expect, it } from "vitest";
import { checkPicturePixels, DEFAULT_MAX_PIXELS, PixelLimitError } from "../nodes/image/pixel-limit.ts";
import { decodePicture } from "../nodes/image/decode-picture.ts";
import { planRun, stillNeeded } from "../server/executor/run-plan.ts";
import type { RunningServer } from "../server/maskflow-server.ts";
import { findCycles } from "../server/workflow/find-cycles.ts";
import { MAX_DISTINCT_KEYS, MAX_JSON_DEPTH, MAX_JSON_VALUES, MAX_OBJECT_MEMBERS } from "../server/http/json-shape.ts";
import type { WorkflowDocument } from "../server/workflow/workflow-document.ts";
import { MAX_NODE_INPUTS, MAX_PROMPT_CHARACTERS, MAX_WORKFLOW_NODES } from "../server/workflow/workflow-limits.ts";
import { createCountingRegistry, workflow } from "./helpers/counting-nodes.ts";
import { api, startTestServer } from "./helpers/test-server.ts";
import { pngHeaderOnly } from "./helpers/png-header-only.ts";

const servers: RunningServer[] = [];
async function start(options: Parameters<typeof startTestServer>[0] = {}) {
  const server = await startTestServer({ registry: createCountingRegistry().registry, ...options });
  servers.push(server);
  return server;
}
const savedMaxPixels = process.env.MASKFLOW_MAX_PIXELS;
afterEach(async () => {
  if (savedMaxPixels === undefined) delete process.env.MASKFLOW_MAX_PIXELS;
  else process.env.MASKFLOW_MAX_PIXELS = savedMaxPixels;
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

type Problem = { code: string; nodeId?: string; input?: string; message: string };

/** NumberSource → Add × (length − 2) → Collect, each Add adding 1; listed forwards or backwards. */
function chain(length: number, order: "forward" | "backward") {
  const nodes: Array<{ id: string; type: string; inputs: Record<string, unknown> }> = [{ id: "n0", type: "NumberSource", inputs: { value: 1 } }];
  for (let i = 1; i < length - 1; i++) nodes.push({ id: `n${i}`, type: "Add", inputs: { a: [`n${i - 1}`, i === 1 ? "value" : "sum"], b: 1 } });
  nodes.push({ id: "out", type: "Collect", inputs: { value: [`n${length - 2}`, "sum"] } });
  return workflow(order === "forward" ? nodes : nodes.reverse());
}

describe("workflow size limits: 400 naming the node, the input and the limit", () => {
  it("refuses more nodes than the limit, and a 9,990-node chain in either order", async () => {
    const server = await start();
    for (const order of ["forward", "backward"] as const) {
      const response = await api(server, "POST", "/api/prompt", { workflow: chain(9_990, order) });
      expect(response.status).toBe(400);
      expect(response.body.error.code).toBe("invalid_workflow");
      expect(response.body.error.details.problems).toEqual([
        { code: "too_large", message: "nodes: the workflow has 9,990 nodes; the limit is 2,000" },
      ]);
    }
    expect((await api(server, "POST", "/api/prompt", { workflow: chain(MAX_WORKFLOW_NODES + 1, "forward") })).status).toBe(400);
  });

  it("accepts and runs a chain at the node limit, listed forwards or backwards", async () => {
    const server = await start();
    for (const order of ["forward", "backward"] as const) {
      const queued = await api(server, "POST", "/api/prompt", { workflow: chain(MAX_WORKFLOW_NODES, order) });
      expect(queued.status).toBe(200);
      const entry = await server.queue.waitFor(queued.body.id);
      expect(entry.status).toBe("success");
      // 1 from the source and 1 from each of the 1,998 adders.
      expect(entry.outputs.out?.values).toEqual({ value: MAX_WORKFLOW_NODES - 1 });
    }
  });

  it("refuses one node with 400,000 unknown inputs (an 8.7 MB request) in a worker, naming the object and the limit; 1,000,000 (14 MB) unread", async () => {
    const server = await start();
    const post = (count: number) => {
      const inputs: Record<string, number> = {};
      for (let i = 0; i < count; i++) inputs[`unknown${i}`] = i;
      const body = JSON.stringify({ workflow: workflow([{ id: "1", type: "Collect", inputs }]) });
      const sent = fetch(`${server.url}/api/prompt`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(60_000),
      });
      return { body, sent };
    };
    const big = post(1_000_000);
    expect(big.body.length).toBeGreaterThan(13_000_000);
    const refused = await big.sent;
    expect(refused.status).toBe(413);
    expect((await refused.json()).error.code).toBe("body_too_large");

    const { body, sent } = post(400_000);
    expect(body.length).toBeGreaterThan(8_000_000);
    const response = await sent;
    const text = await response.text();
    expect(response.status).toBe(400);
    expect(text.length).toBeLessThan(2_000);
    expect(JSON.parse(text).error).toEqual({
      code: "too_large",
      message: `workflow.nodes.0.inputs has 400,000 members; the limit for one object is ${MAX_OBJECT_MEMBERS.toLocaleString("en-US")}`,
      details: { field: "workflow.nodes.0.inputs" },
    });

    // Under the body's shape limits, the workflow's own: a node names at most 64 inputs.
    const inputs: Record<string, number> = {};
    for (let i = 0; i < 1_000; i++) inputs[`unknown${i}`] = i;
    const many = await api(server, "POST", "/api/prompt", { workflow: workflow([{ id: "1", type: "Collect", inputs }]) });
    expect(many.status).toBe(400);
    expect(many.body.error.details.problems).toEqual([
      { code: "too_large", nodeId: "1", message: `inputs: the node has 1,000 inputs; the limit is ${MAX_NODE_INPUTS}` },
    ]);
  });

  it("refuses bodies whose shape would be costly to rebuild: too deep, too many values, too many names", async () => {
    const server = await start();
    const send = async (body: string) => {
      const response = await fetch(`${server.url}/api/prompt`, { method: "POST", headers: { "content-type": "application/json" }, body });
      return { status: response.status, error: ((await response.json()) as { error: { code: string; message: string } }).error };
    };
    const deep = await send(`{"workflow":${"[".repeat(100_000)}${"]".repeat(100_000)}}`);
    expect(deep.status).toBe(400);
    expect(deep.error.message).toBe(`workflow${".0".repeat(MAX_JSON_DEPTH - 1)} is nested deeper than ${MAX_JSON_DEPTH} levels, the limit`);

    const values = await send(JSON.stringify({ workflow: { ui: { numbers: Array.from({ length: MAX_JSON_VALUES }, (_, i) => i) } } }));
    expect(values).toEqual({ status: 400, error: expect.objectContaining({ code: "too_large", message: `request body holds more than ${MAX_JSON_VALUES.toLocaleString("en-US")} JSON values, the limit` }) });

    const names = Array.from({ length: 20 }, (_, n) => Object.fromEntries(Array.from({ length: 1_000 }, (_, i) => [`k${n}_${i}`, 0])));
    const distinct = await send(JSON.stringify({ workflow: { ui: { names } } }));
    expect(distinct.status).toBe(400);
    expect(distinct.error.message).toBe(`request body uses more than ${MAX_DISTINCT_KEYS.toLocaleString("en-US")} different member names, the limit`);

    const malformed = await send(`{"workflow": {"nodes": [${"1,".repeat(10_000)}`);
    expect(malformed.status).toBe(400);
    expect(malformed.error.code).toBe("malformed_json");
    // The server answered each of them and still does.
    expect((await fetch(`${server.url}/api/system`)).status).toBe(200);
  });

  it("lists at most 100 problems and counts the rest", async () => {
    const server = await start();
    const nodes = Array.from({ length: 1_500 }, (_, i) => ({ id: `u${i}`, type: "NoSuchNode" }));
    const response = await api(server, "POST", "/api/prompt", { workflow: workflow(nodes) });
    expect(response.status).toBe(400);
    const problems: Problem[] = response.body.error.details.problems;
    expect(problems).toHaveLength(101);
    expect(problems.slice(0, 100).every((p) => p.code === "unknown_node_type")).toBe(true);
    expect(problems[100]).toEqual({ code: "more_problems", message: "and 1,400 more problems" });
    expect(response.body.error.message).toMatch(/^workflow is invalid \(more than 100 problems\)/);
    expect(response.body.error.message).toMatch(/and 1,400 more problems$/);
  });

  it("refuses a text value over 1,000,000 characters and a document over 4,000,000, and never echoes them", async () => {
    const server = await start();
    const long = workflow([
      { id: "1", type: "NumberSource" },
      { id: "2", type: "Collect", inputs: { value: ["1", "value"], label: "a".repeat(1_000_001) } },
    ]);
    const literal = await api(server, "POST", "/api/prompt", { workflow: long });
    expect(literal.status).toBe(400);
    expect(literal.body.error.details.problems).toEqual([
      { code: "too_large", nodeId: "2", input: "label", message: "the text is 1,000,001 characters long; the limit for one value is 1,000,000" },
    ]);

    const heavy = workflow(Array.from({ length: 5 }, (_, i) => ({ id: `${i}`, type: "NumberSource", ui: { title: "t".repeat(900_000) } })));
    const document = await api(server, "POST", "/api/prompt", { workflow: heavy });
    expect(document.status).toBe(400);
    expect(document.body.error.details.problems).toEqual([
      { code: "too_large", message: "workflow: the document holds more than 4,000,000 characters of text, the limit" },
    ]);

    // Values a problem quotes are cut short: a wrong 900,000-character option answers in a few hundred bytes.
    const wrongOption = workflow([
      { id: "1", type: "NumberSource" },
      { id: "2", type: "Collect", inputs: { value: ["1", "value"], label: "b".repeat(900_000) } },
    ]);
    const option = await fetch(`${server.url}/api/prompt`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ workflow: wrongOption }),
    });
    expect(option.status).toBe(400);
    const text = await option.text();
    expect(text.length).toBeLessThan(1_000);
    expect(text).toMatch(/900,002 characters\).* is not allowed; allowed values: \\"a\\", \\"b\\"/);
  });
});

describe("prompt length", () => {
  it("POST /api/prompt: a Prompt node's text over 10,000 characters is a 400 naming the input and the limit", async () => {
    const server = await startTestServer();
    servers.push(server);
    const prompt = workflow([{ id: "p", type: "Prompt", inputs: { positive: "cat ".repeat(2_501), negative: "x".repeat(MAX_PROMPT_CHARACTERS) } }]);
    const response = await api(server, "POST", "/api/prompt", { workflow: prompt });
    expect(response.status).toBe(400);
    expect(response.body.error.details.problems).toEqual([
      { code: "input_check", nodeId: "p", input: "positive", message: "the prompt is 10,004 characters long; the limit is 10,000" },
    ]);
  });

  it("the Segmind endpoint: prompt and negative_prompt over 10,000 characters are a 400 naming the field", async () => {
    const server = await startTestServer();
    servers.push(server);
    const png = (await sharp({ create: { width: 8, height: 8, channels: 3, background: "#808080" } }).png().toBuffer()).toString("base64");
    for (const [field, request] of [
      ["prompt", { image: png, mask: png, prompt: "y".repeat(10_001) }],
      ["negative_prompt", { image: png, mask: png, prompt: "a cat", negative_prompt: "n".repeat(20_000) }],
    ] as const) {
      const response = await api(server, "POST", "/v1/sd1.5-inpainting", request);
      expect(response.status).toBe(400);
      expect(response.body.error.message).toContain(`${field} is ${field === "prompt" ? "10,001" : "20,000"} characters long; the limit is 10,000`);
    }
  });
});

describe("pixel limit (MASKFLOW_MAX_PIXELS)", () => {
  it("refuses a PNG declaring 16383 × 16383 from its header, without decoding it", async () => {
    const bomb = pngHeaderOnly(16_383, 16_383);
    expect(bomb.length).toBeLessThan(200);
    // The file holds 16 bytes of pixel data: a decoder would fail on it with another error.
    const refused = await decodePicture(bomb, "LoadImage: input `image`").catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(PixelLimitError);
    expect((refused as Error).message).toBe(
      "LoadImage: input `image`: the picture is 16383 × 16383 = 268,402,689 pixels; the limit is 67,108,864 pixels (MASKFLOW_MAX_PIXELS)",
    );
    await expect(checkPicturePixels(bomb, "image")).rejects.toThrow(PixelLimitError);
    expect(await checkPicturePixels(pngHeaderOnly(8192, 8192), "image")).toEqual({ width: 8192, height: 8192 });
    expect(DEFAULT_MAX_PIXELS).toBe(8192 * 8192);
  });

  it("the Segmind endpoint answers 400 naming the field, the size and the limit", async () => {
    const server = await startTestServer();
    servers.push(server);
    const small = (await sharp({ create: { width: 8, height: 8, channels: 3, background: "#808080" } }).png().toBuffer()).toString("base64");
    const response = await api(server, "POST", "/v1/sd1.5-inpainting", { image: small, mask: pngHeaderOnly(16_000, 16_000).toString("base64"), prompt: "a cat" });
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe("invalid_image");
    expect(response.body.error.details).toEqual({ field: "mask" });
    expect(response.body.error.message).toBe(
      "mask: the picture is 16000 × 16000 = 256,000,000 pixels; the limit is 67,108,864 pixels (MASKFLOW_MAX_PIXELS)",
    );
  });

  it("MASKFLOW_MAX_PIXELS lowers the limit for LoadImage in a job, and a bad value is named", async () => {
    const server = await startTestServer();
    servers.push(server);
    const picture = await sharp({ create: { width: 40, height: 30, channels: 3, background: "#808080" } }).png().toBuffer();
    await sharp(picture).toFile(path.join(server.folders.folder("input"), "wide.png"));
    process.env.MASKFLOW_MAX_PIXELS = "1000";
    const queued = await api(server, "POST", "/api/prompt", {
      workflow: workflow([
        { id: "1", type: "LoadImage", inputs: { image: "wide.png" } },
        { id: "2", type: "PreviewImage", inputs: { images: ["1", "image"] } },
      ]),
    });
    expect(queued.status).toBe(200);
    const entry = await server.queue.waitFor(queued.body.id);
    expect(entry.status).toBe("error");
    expect(entry.error?.message).toBe(
      'LoadImage: input `image` ("wide.png"): the picture is 40 × 30 = 1,200 pixels; the limit is 1,000 pixels (MASKFLOW_MAX_PIXELS)',
    );
    process.env.MASKFLOW_MAX_PIXELS = "lots";
    await expect(checkPicturePixels(picture, "image")).rejects.toThrow(/MASKFLOW_MAX_PIXELS must be a whole number of pixels of at least 1.*"lots"/);
  });
});

describe("PUT /api/workflows/:name checks before it saves", () => {
  it("refuses a document over the limits with 400 and the problems, and the saved file stays", async () => {
    const server = await start();
    const good = chain(5, "forward");
    expect((await api(server, "PUT", "/api/workflows/keep", good)).body).toMatchObject({ saved: true, problems: [] });
    const file = path.join(server.folders.workflows, "keep.json");
    const before = await readFile(file, "utf8");
    for (const order of ["forward", "backward"] as const) {
      const response = await api(server, "PUT", "/api/workflows/keep", chain(9_990, order));
      expect(response.status).toBe(400);
      expect(response.body.error.details.problems[0].message).toBe("nodes: the workflow has 9,990 nodes; the limit is 2,000");
    }
    const inputs = Object.fromEntries(Array.from({ length: 1_000 }, (_, i) => [`x${i}`, i]));
    const wide = await api(server, "PUT", "/api/workflows/keep", workflow([{ id: "1", type: "Collect", inputs }]));
    expect(wide.status).toBe(400);
    expect(wide.body.error.details.problems[0].message).toBe(`inputs: the node has 1,000 inputs; the limit is ${MAX_NODE_INPUTS}`);
    const wider = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`x${i}`, i]));
    const refused = await api(server, "PUT", "/api/workflows/keep", workflow([{ id: "1", type: "Collect", inputs: wider }]));
    expect(refused.status).toBe(400);
    expect(refused.body.error.details).toEqual({ field: "nodes.0.inputs" });
    expect(await readFile(file, "utf8")).toBe(before);
    // An unfinished graph within the limits is still saved, with its problems (the editor saves work in progress).
    const unfinished = await api(server, "PUT", "/api/workflows/keep", workflow([{ id: "1", type: "Collect" }]));
    expect(unfinished.body).toMatchObject({ saved: true, problems: [{ code: "missing_input", nodeId: "1", input: "value" }] });
  });
});

describe("graph walks without recursion", () => {
  const isOutput = (node: { type: string }) => node.type === "Collect";
  function document(length: number, order: "forward" | "backward"): WorkflowDocument {
    return chain(length, order) as WorkflowDocument;
  }

  it("plans a 100,000-node chain in either order, each node after its source", () => {
    for (const order of ["forward", "backward"] as const) {
      const planned = planRun(document(100_000, order), isOutput);
      expect(planned).toHaveLength(100_000);
      expect(planned[0].id).toBe("n0");
      expect(planned[99_998].id).toBe("n99998");
      expect(planned[99_999].id).toBe("out");
      expect(stillNeeded(document(100_000, order), new Map(), isOutput).size).toBe(100_000);
      expect(stillNeeded(document(100_000, order), new Map([["n50000", {}]]), isOutput).size).toBe(49_999);
    }
  });

  it("finds no cycle in a 100,000-node chain and the one cycle when it is closed", () => {
    expect(findCycles(document(100_000, "forward"))).toEqual({ cycles: [], total: 0 });
    const closed = document(100_000, "backward");
    closed.nodes.find((node) => node.id === "n0")!.inputs.value = ["out", "value"];
    const { cycles, total } = findCycles(closed);
    expect(total).toBe(1);
    expect(cycles[0]).toHaveLength(100_000);
  });
});
