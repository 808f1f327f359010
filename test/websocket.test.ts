import { afterEach, describe, expect, it } from "vitest";
import { decodePreviewFrame } from "../server/http/preview-frame.ts";
import type { RunningServer } from "../server/maskflow-server.ts";
import { defineNode } from "../nodes/node-definition.ts";
import { createCountingRegistry, workflow } from "./helpers/counting-nodes.ts";
import { api, startTestServer } from "./helpers/test-server.ts";
import { connectClient } from "./helpers/ws-client.ts";

const servers: RunningServer[] = [];
const clients: Array<{ close(): void }> = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const PreviewNode = defineNode({
  type: "PreviewSteps",
  category: "test",
  description: "two steps, each with a 4×4 preview",
  isOutput: true,
  inputs: {},
  outputs: {},
  async run(_inputs, ctx) {
    for (let step = 1; step <= 2; step++) {
      ctx.progress({ value: step, max: 2, preview: { width: 4, height: 4, data: new Uint8Array(48).fill(step * 100) } });
    }
    return {};
  },
});

async function start() {
  const { registry } = createCountingRegistry();
  registry.register(PreviewNode);
  const server = await startTestServer({ registry });
  servers.push(server);
  return server;
}

describe("WebSocket events", () => {
  it("sends the status on connect and the events of a job in order", async () => {
    const server = await start();
    const client = await connectClient(server.url, "client-a");
    clients.push(client);
    const hello = await client.waitFor((m) => m.type === "status");
    expect(hello.data).toMatchObject({ sid: "client-a", status: { queueRemaining: 0 } });

    const doc = workflow([
      { id: "1", type: "NumberSource" },
      { id: "2", type: "Slow", inputs: { a: ["1", "value"], steps: 2, ms: 1 } },
      { id: "3", type: "Collect", inputs: { value: ["2", "value"] } },
    ]);
    const { body } = await api(server, "POST", "/api/prompt", { workflow: doc, clientId: "client-a" });
    await client.waitFor((m) => m.type === "execution_success");
    const jobEvents = client.messages.filter((m) => m.type !== "status");
    expect(jobEvents.map((m) => m.type + (m.data.node ? `:${m.data.node}` : ""))).toEqual([
      "execution_start",
      "execution_cached",
      "executing:1",
      "executed:1",
      "executing:2",
      "progress:2",
      "progress:2",
      "executed:2",
      "executing:3",
      "executed:3",
      "execution_success",
    ]);
    expect(jobEvents.every((m) => m.data.jobId === body.id)).toBe(true);
    expect(jobEvents.find((m) => m.type === "progress")!.data).toMatchObject({ value: 1, max: 2 });
    expect(jobEvents.find((m) => m.type === "executed" && m.data.node === "3")!.data.output).toEqual({ images: [], values: { value: 3 } });

    // A second run of the same graph is all cached.
    await api(server, "POST", "/api/prompt", { workflow: doc, clientId: "client-a" });
    const cached = await client.waitFor((m) => m.type === "execution_cached" && m.data.nodes.length === 3);
    expect(cached.data.nodes).toEqual(["1", "2", "3"]);
  });

  it("sends a job's events only to the client that queued it, status to everyone", async () => {
    const server = await start();
    const mine = await connectClient(server.url, "mine");
    const other = await connectClient(server.url, "other");
    clients.push(mine, other);
    await api(server, "POST", "/api/prompt", { workflow: workflow([{ id: "1", type: "NumberSource" }, { id: "2", type: "Collect", inputs: { value: ["1", "value"] } }]), clientId: "mine" });
    await mine.waitFor((m) => m.type === "execution_success");
    await other.waitFor((m) => m.type === "status" && m.data.status.queueRemaining === 0 && other.messages.length > 1);
    expect(other.messages.some((m) => m.type === "execution_start")).toBe(false);
  });

  it("streams step previews as binary JPEG frames with the documented header", async () => {
    const server = await start();
    const client = await connectClient(server.url, "p");
    clients.push(client);
    await api(server, "POST", "/api/prompt", { workflow: workflow([{ id: "7", type: "PreviewSteps" }]), clientId: "p" });
    await client.waitFor((m) => m.type === "execution_success");
    const frames = client.messages.filter((m) => m.type === "binary");
    expect(frames).toHaveLength(2);
    const frame = decodePreviewFrame(frames[0].binary!);
    expect(frame).toMatchObject({ event: 1, format: 1, nodeId: "7" });
    expect([...frame.jpeg.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
    // Each preview follows its progress event.
    const order = client.messages.map((m) => m.type).filter((t) => t === "progress" || t === "binary");
    expect(order).toEqual(["progress", "binary", "progress", "binary"]);
  });

  it("a client that reconnects gets the current status, with the running job", async () => {
    const server = await start();
    const first = await connectClient(server.url, "again");
    clients.push(first);
    const { body } = await api(server, "POST", "/api/prompt", {
      workflow: workflow([{ id: "1", type: "NumberSource" }, { id: "2", type: "Slow", inputs: { a: ["1", "value"], steps: 100, ms: 5 } }, { id: "3", type: "Collect", inputs: { value: ["2", "value"] } }]),
      clientId: "again",
    });
    await first.waitFor((m) => m.type === "progress");
    first.close();
    const second = await connectClient(server.url, "again");
    clients.push(second);
    const status = await second.waitFor((m) => m.type === "status");
    expect(status.data.status).toMatchObject({ running: body.id, queueRemaining: 1 });
    await second.waitFor((m) => m.type === "progress");
    server.queue.interrupt();
    await second.waitFor((m) => m.type === "execution_interrupted");
  });
});
