import { readFile, writeFile, mkdir } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { afterEach, describe, expect, it } from "vitest";
import type { RunningServer } from "../server/maskflow-server.ts";
import { createCountingRegistry, workflow } from "./helpers/counting-nodes.ts";
import { api, startTestServer } from "./helpers/test-server.ts";

const servers: RunningServer[] = [];
async function start(options: Parameters<typeof startTestServer>[0] = {}) {
  const server = await startTestServer({ registry: createCountingRegistry().registry, ...options });
  servers.push(server);
  return server;
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const cheap = (value = 2) =>
  workflow([
    { id: "1", type: "NumberSource", inputs: { value } },
    { id: "2", type: "Collect", inputs: { value: ["1", "value"] } },
  ]);
const slow = (steps = 200) =>
  workflow([
    { id: "1", type: "NumberSource" },
    { id: "2", type: "Slow", inputs: { a: ["1", "value"], steps, ms: 5 } },
    { id: "3", type: "Collect", inputs: { value: ["2", "value"] } },
  ]);

async function png(width = 8, height = 8) {
  return sharp({ create: { width, height, channels: 4, background: { r: 200, g: 10, b: 10, alpha: 1 } } }).png().toBuffer();
}

async function upload(server: RunningServer, bytes: Uint8Array, name: string, fields: Record<string, string> = {}) {
  const form = new FormData();
  form.append("image", new Blob([new Uint8Array(bytes)]), name);
  for (const [key, value] of Object.entries(fields)) form.append(key, value);
  const response = await fetch(`${server.url}/api/upload`, { method: "POST", body: form, signal: AbortSignal.timeout(20_000) });
  return { status: response.status, body: (await response.json()) as any };
}

describe("HTTP API", () => {
  it("GET /api/nodes lists every node schema", async () => {
    const server = await start();
    const { status, body } = await api(server, "GET", "/api/nodes");
    expect(status).toBe(200);
    const collect = body.find((n: { type: string }) => n.type === "Collect");
    expect(collect).toMatchObject({ isOutput: true, inputs: { label: { type: "STRING", options: ["a", "b"] } } });
  });

  it("the built-in server publishes the shipped nodes", async () => {
    const server = await startTestServer();
    servers.push(server);
    const { body } = await api(server, "GET", "/api/nodes");
    const types = body.map((n: { type: string }) => n.type);
    for (const type of ["LoadImage", "LoadMask", "SaveImage", "PreviewImage", "ResizeImage", "CropImage", "InvertMask", "ThresholdMask", "GrowMask", "FeatherMask", "Prompt", "Seed", "Int", "Float", "String"]) {
      expect(types).toContain(type);
    }
  });

  it("saves, lists, reads and deletes workflows; shipped ones are read-only", async () => {
    const shipped = await startTestServer({ registry: createCountingRegistry().registry });
    servers.push(shipped);
    expect((await api(shipped, "PUT", "/api/workflows/mine", cheap(4))).body).toMatchObject({ saved: true, problems: [] });
    expect((await api(shipped, "GET", "/api/workflows/mine")).body).toEqual(cheap(4));
    const list = (await api(shipped, "GET", "/api/workflows")).body;
    expect(list).toContainEqual({ name: "mine", source: "user" });
    expect(list.some((w: { source: string }) => w.source === "shipped")).toBe(true);
    const shippedName = list.find((w: { source: string }) => w.source === "shipped").name;
    expect((await api(shipped, "DELETE", `/api/workflows/${shippedName}`)).status).toBe(403);
    expect((await api(shipped, "DELETE", "/api/workflows/mine")).status).toBe(200);
    expect((await api(shipped, "GET", "/api/workflows/mine")).status).toBe(404);
  });

  it("rejects bad workflows and bad names with a 4xx naming the field, and keeps what was saved", async () => {
    const server = await start();
    await api(server, "PUT", "/api/workflows/keep", cheap(7));
    const file = path.join(server.folders.workflows, "keep.json");
    const before = await readFile(file, "utf8");

    const malformed = await api(server, "PUT", "/api/workflows/keep", "{not json");
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.code).toBe("malformed_json");

    const otherFormat = await api(server, "PUT", "/api/workflows/keep", { ...cheap(), format: "comfy" });
    expect(otherFormat.status).toBe(400);
    expect(otherFormat.body.error.message).toMatch(/format/);

    const otherVersion = await api(server, "PUT", "/api/workflows/keep", { ...cheap(), version: 9 });
    expect(otherVersion.body.error.message).toMatch(/version/);

    const unknownField = await api(server, "PUT", "/api/workflows/keep", { ...cheap(), surprise: 1 });
    expect(unknownField.status).toBe(400);
    expect(unknownField.body.error.message).toMatch(/surprise/);

    const badName = await api(server, "PUT", "/api/workflows/..%2F..%2Fetc", cheap());
    expect(badName.status).toBe(400);
    expect(badName.body.error.details.field).toBe("name");

    expect(await readFile(file, "utf8")).toBe(before);
    expect((await api(server, "GET", "/api/nodes")).status).toBe(200);
  });

  it("queues a prompt, runs it and records it in history", async () => {
    const server = await start();
    const queued = await api(server, "POST", "/api/prompt", { workflow: cheap(9) });
    expect(queued.status).toBe(200);
    expect(queued.body).toMatchObject({ id: expect.any(String), position: 0 });
    const entry = await server.queue.waitFor(queued.body.id);
    expect(entry.status).toBe("success");
    const history = await api(server, "GET", `/api/history/${queued.body.id}`);
    expect(history.body).toMatchObject({ status: "success", outputs: { "2": { values: { value: 9 } } } });
    expect((await api(server, "GET", "/api/history")).body[0].id).toBe(queued.body.id);
    expect((await api(server, "GET", "/api/history/nope")).status).toBe(404);
  });

  it("answers an invalid prompt with 400 and every problem", async () => {
    const server = await start();
    const bad = workflow([
      { id: "1", type: "Nope" },
      { id: "2", type: "Collect", inputs: { value: ["2", "value"] } },
    ]);
    const response = await api(server, "POST", "/api/prompt", { workflow: bad });
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe("invalid_workflow");
    expect(response.body.error.details.problems.map((p: { nodeId: string }) => p.nodeId)).toEqual(["1", "2", "2"]);
    expect((await api(server, "POST", "/api/prompt", { workflow: cheap(), extra: 1 })).status).toBe(400);
  });

  it("bounds the queue: 429 with Retry-After when full; the queue, cancel and interrupt routes work", async () => {
    const server = await start({ maxPending: 2 });
    const running = await api(server, "POST", "/api/prompt", { workflow: slow() });
    // Wait until it runs so the two that follow are pending.
    for (let i = 0; i < 200 && server.queue.status().running !== running.body.id; i++) await new Promise((r) => setTimeout(r, 5));
    const a = await api(server, "POST", "/api/prompt", { workflow: cheap(1) });
    const b = await api(server, "POST", "/api/prompt", { workflow: cheap(2) });
    expect([a.body.position, b.body.position]).toEqual([1, 2]);
    const full = await api(server, "POST", "/api/prompt", { workflow: cheap(3) });
    expect(full.status).toBe(429);
    expect(Number(full.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);

    const queue = (await api(server, "GET", "/api/queue")).body;
    expect(queue.running.map((j: { id: string }) => j.id)).toEqual([running.body.id]);
    expect(queue.pending.map((j: { id: string }) => j.id)).toEqual([a.body.id, b.body.id]);

    expect((await api(server, "POST", "/api/queue", { delete: [b.body.id] })).body.deleted).toEqual([b.body.id]);
    expect((await api(server, "POST", "/api/interrupt", {})).body.interrupted).toBe(true);
    expect((await server.queue.waitFor(running.body.id)).status).toBe("interrupted");
    expect((await server.queue.waitFor(a.body.id)).status).toBe("success");
  });

  it("keeps history across a restart", async () => {
    const first = await start();
    const { body } = await api(first, "POST", "/api/prompt", { workflow: cheap(5) });
    await first.queue.waitFor(body.id);
    const dataDir = first.folders.root;
    await first.close();
    servers.splice(servers.indexOf(first), 1);
    await writeFile(path.join(dataDir, "temp", "old-preview.png"), await png());
    const second = await start({ dataDir });
    expect((await api(second, "GET", `/api/history/${body.id}`)).body).toMatchObject({ id: body.id, status: "success" });
    // Previews of the last session are swept at start; history stays.
    expect((await api(second, "GET", "/api/view?filename=old-preview.png&type=temp")).status).toBe(404);
  });

  it("uploads images, refusing non-images and oversized files; never overwrites by default", async () => {
    const server = await start({ maxUploadBytes: 64 * 1024 });
    const first = await upload(server, await png(), "room.png");
    expect(first).toEqual({ status: 200, body: { name: "room.png", subfolder: "", type: "input" } });
    const second = await upload(server, await png(4, 4), "room.png");
    expect(second.body.name).toBe("room (1).png");
    expect((await sharp(path.join(server.folders.input, "room.png")).metadata()).width).toBe(8);

    const text = await upload(server, new TextEncoder().encode("I am not a PNG at all"), "fake.png");
    expect(text.status).toBe(400);
    expect(text.body.error.details.field).toBe("image");

    const big = await upload(server, new Uint8Array(200 * 1024), "big.png");
    expect(big.status).toBe(413);
    expect(big.body.error.message).toMatch(/limit/);

    const none = await fetch(`${server.url}/api/upload`, { method: "POST", body: new FormData() });
    expect(none.status).toBe(400);
    expect((await api(server, "GET", "/api/nodes")).status).toBe(200);
  });

  it("serves files by name and type, refusing names that leave their folder", async () => {
    const server = await start();
    await mkdir(server.folders.output, { recursive: true });
    await writeFile(path.join(server.folders.output, "a.png"), await png());
    const ok = await fetch(`${server.url}/api/view?filename=a.png&type=output`);
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toBe("image/png");
    for (const query of ["filename=../history.json&type=output", "filename=..%2F..%2Fetc%2Fpasswd&type=input", "filename=a.png&type=output&subfolder=..", "filename=/etc/passwd&type=input"]) {
      const response = await api(server, "GET", `/api/view?${query}`);
      expect(response.status, query).toBe(400);
      expect(response.body.error.code).toBe("invalid_filename");
    }
    expect((await api(server, "GET", "/api/view?filename=a.png&type=secret")).status).toBe(400);
    expect((await api(server, "GET", "/api/view?filename=missing.png&type=output")).status).toBe(404);
  });

  it("answers unknown API routes with a JSON 404", async () => {
    const server = await start();
    const response = await api(server, "GET", "/api/nope");
    expect(response.status).toBe(404);
    expect(response.body.error.code).toBe("not_found");
  });
});

describe("input files", () => {
  it("lists input pictures, the shipped examples included, and views them", async () => {
    const server = await startTestServer();
    servers.push(server);
    const form = new FormData();
    form.append("image", new Blob([new Uint8Array(await png())]), "mine.png");
    await fetch(`${server.url}/api/upload`, { method: "POST", body: form });
    const list = (await api(server, "GET", "/api/files?type=input")).body as string[];
    expect(list).toContain("mine.png");
    expect(list).toContain("examples/room.png");
    const view = await fetch(`${server.url}/api/view?filename=examples/room.png&type=input`);
    expect(view.status).toBe(200);
    expect((await api(server, "GET", "/api/files?type=secret")).status).toBe(400);
  });
});

describe("API keys (MASKFLOW_API_KEYS)", () => {
  it("guards every API route and the WebSocket; the key may come as x-api-key or as the session cookie POST /api/session sets", async () => {
    const server = await startTestServer({ registry: createCountingRegistry().registry, apiKeys: ["secret-1"] });
    servers.push(server);
    const noKey = await api(server, "GET", "/api/nodes");
    expect(noKey.status).toBe(401);
    expect(noKey.body.error.code).toBe("missing_api_key");
    const wrong = await fetch(`${server.url}/api/queue`, { headers: { "x-api-key": "nope" } });
    expect(wrong.status).toBe(401);
    expect((await fetch(`${server.url}/api/nodes`, { headers: { "x-api-key": "secret-1" } })).status).toBe(200);
    const signIn = await fetch(`${server.url}/api/session`, { method: "POST", headers: { "x-api-key": "secret-1" } });
    expect(signIn.status).toBe(200);
    const session = signIn.headers.getSetCookie().find((c) => c.startsWith("maskflow_session="))!.split(";")[0];
    expect((await fetch(`${server.url}/api/nodes`, { headers: { cookie: `other=1; ${session}` } })).status).toBe(200);
    // The editor's page itself loads without a key (it asks for one).
    expect((await fetch(`${server.url}/`)).status).toBe(200);

    const { WebSocket } = await import("ws");
    const refused = await new Promise<number>((resolve) => {
      const socket = new WebSocket(`${server.url.replace("http", "ws")}/ws?clientId=x`);
      socket.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      socket.on("open", () => resolve(101));
    });
    expect(refused).toBe(401);
    const accepted = await new Promise<number>((resolve) => {
      const socket = new WebSocket(`${server.url.replace("http", "ws")}/ws?clientId=x`, { headers: { cookie: session } });
      socket.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      socket.on("open", () => {
        socket.close();
        resolve(101);
      });
    });
    expect(accepted).toBe(101);
  });
});
