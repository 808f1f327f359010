import type { Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { decodePreviewFrame } from "../server/http/preview-frame.ts";
import { BACKLOG_CLOSE_CODE, MAX_BACKLOG_BYTES, PREVIEW_BACKLOG_BYTES } from "../server/http/websocket-hub.ts";
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

/** Many 256×256 previews of noise (about 50 KB each as JPEG), far more than a client that reads nothing can take. */
const NoisyPreviews = defineNode({
  type: "NoisyPreviews",
  category: "test",
  description: "steps with a noisy 256×256 preview each",
  isOutput: true,
  inputs: { steps: { type: "INT", widget: "number", default: 300, min: 1, max: 1000 } },
  outputs: {},
  async run({ steps }, ctx) {
    const data = new Uint8Array(256 * 256 * 3);
    for (let step = 1; step <= steps; step++) {
      for (let i = 0; i < data.length; i++) data[i] = Math.imul(i + step * 7919, 2654435761) >>> 24;
      ctx.progress({ value: step, max: steps, preview: { width: 256, height: 256, data: data.slice() } });
      // Let the frames go out as they are made, as a real sampler's steps do.
      await new Promise((resolve) => setImmediate(resolve));
    }
    return {};
  },
});

/** An output node whose `executed` event carries 512 KB of text: JSON events the hub must not drop. */
const LoudReport = defineNode({
  type: "LoudReport",
  category: "test",
  description: "reports half a megabyte of text",
  isOutput: true,
  inputs: { n: { type: "INT", widget: "number", default: 0, min: 0, max: 1000 } },
  outputs: {},
  async run({ n }, ctx) {
    ctx.report({ text: `${n}:${"x".repeat(512 * 1024)}` });
    // A pause, as real nodes take, so a client that does read keeps up (it shares this process's loop).
    await new Promise((resolve) => setTimeout(resolve, 5));
    return {};
  },
});

async function start() {
  const { registry } = createCountingRegistry();
  registry.register(PreviewNode).register(NoisyPreviews).register(LoudReport);
  const server = await startTestServer({ registry });
  servers.push(server);
  return server;
}

/**
 * The server's end of each WebSocket, by clientId, and the most bytes it has held unsent for it, sampled every
 * 2 ms (at most `samples` times) until stopped. The same socket ws writes to: 'upgrade' hands it to every listener.
 */
function watchServerSockets(server: RunningServer, samples = 20_000) {
  const sockets = new Map<string, Socket>();
  const most = new Map<string, number>();
  server.httpServer.on("upgrade", (request, socket) => {
    const clientId = new URL(request.url ?? "/", "http://x").searchParams.get("clientId");
    if (clientId) sockets.set(clientId, socket as Socket);
  });
  let taken = 0;
  const timer = setInterval(() => {
    if (++taken > samples) clearInterval(timer);
    for (const [clientId, socket] of sockets) most.set(clientId, Math.max(most.get(clientId) ?? 0, socket.writableLength));
  }, 2);
  return { sockets, most, stop: () => clearInterval(timer) };
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

  it("sends a client that reads nothing only the newest previews: what the server holds for it stays small", async () => {
    const server = await start();
    const watch = watchServerSockets(server);
    try {
      // Two sockets with one clientId: one reads, one stops reading at once; a third client only watches the status.
      const reader = await connectClient(server.url, "previews");
      const stalled = await connectClient(server.url, "previews");
      const bystander = await connectClient(server.url, "bystander");
      clients.push(reader, stalled, bystander);
      await stalled.waitFor((m) => m.type === "status");
      stalled.socket.pause();

      const { body } = await api(server, "POST", "/api/prompt", { workflow: workflow([{ id: "1", type: "NoisyPreviews", inputs: { steps: 600 } }]), clientId: "previews" });
      await reader.waitFor((m) => m.type === "execution_success", 60_000);
      await bystander.waitFor((m) => m.type === "status" && m.data.status.queueRemaining === 0 && bystander.messages.length > 2);
      const frames = reader.messages.filter((m) => m.type === "binary");
      const made = frames.reduce((sum, m) => sum + m.binary!.length, 0);
      const largest = Math.max(...frames.map((m) => m.binary!.length));
      // A backlog that would have grown without bound: far more than a socket's kernel buffers take.
      expect(made).toBeGreaterThan(10 * 1024 * 1024);
      expect(watch.most.get("previews")).toBeLessThanOrEqual(PREVIEW_BACKLOG_BYTES + 2 * largest);

      // Once it reads again it gets every JSON event of the job, and only some of the previews.
      stalled.socket.resume();
      const done = await stalled.waitFor((m) => m.type === "execution_success", 30_000);
      expect(done.data.jobId).toBe(body.id);
      expect(stalled.messages.filter((m) => m.type === "progress")).toHaveLength(600);
      expect(stalled.messages.filter((m) => m.type === "binary").length).toBeLessThan(frames.length);
    } finally {
      watch.stop();
    }
  });

  it(`closes a client that would hold more than ${MAX_BACKLOG_BYTES / 1024 / 1024} MB of events unread; others carry on and it can reconnect`, async () => {
    const server = await start();
    const watch = watchServerSockets(server);
    try {
      const reader = await connectClient(server.url, "loud");
      const stalled = await connectClient(server.url, "loud");
      clients.push(reader, stalled);
      await stalled.waitFor((m) => m.type === "status");
      const closed = new Promise<{ code: number; reason: string }>((resolve) => stalled.socket.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
      stalled.socket.pause();

      // 48 events of 512 KB: 24 MB of JSON for each client.
      const nodes = Array.from({ length: 48 }, (_, i) => ({ id: String(i + 1), type: "LoudReport", inputs: { n: i } }));
      const queued = await api(server, "POST", "/api/prompt", { workflow: workflow(nodes), clientId: "loud" });
      expect(queued.status, JSON.stringify(queued.body)).toBe(200);
      await reader.waitFor((m) => m.type === "execution_success", 30_000);
      expect(reader.messages.filter((m) => m.type === "executed")).toHaveLength(48);

      // The server gave up on the stalled one and let go of what it held for it.
      const serverEnd = watch.sockets.get("loud")!;
      expect(watch.most.get("loud")).toBeLessThanOrEqual(MAX_BACKLOG_BYTES);
      // Only the stalled one: the one that reads was never behind.
      expect(server.log.text("warn")).toMatch(new RegExp(`^closing WebSocket client "loud": \\d+ bytes unread, more than the 8 MB limit$`));
      stalled.socket.resume();
      const { code } = await closed;
      // 1013 if the close frame got through before the server cut it off, 1006 if not.
      expect([BACKLOG_CLOSE_CODE, 1006]).toContain(code);
      expect(serverEnd.destroyed).toBe(true);

      const again = await connectClient(server.url, "loud");
      clients.push(again);
      expect((await again.waitFor((m) => m.type === "status")).data).toMatchObject({ sid: "loud" });
      // The job's end reaches the queue's count just after its last event: the count follows as a status event.
      await again.waitFor((m) => m.type === "status" && m.data.status.queueRemaining === 0);
    } finally {
      watch.stop();
    }
  });
});
