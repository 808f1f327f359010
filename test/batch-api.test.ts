import { mkdir, mkdtemp, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterEach, describe, expect, it } from "vitest";
import { LoadImageNode } from "../nodes/image/load-image.ts";
import type { RunningServer } from "../server/maskflow-server.ts";
import { createCountingRegistry, workflow } from "./helpers/counting-nodes.ts";
import { api, startTestServer } from "./helpers/test-server.ts";

const servers: RunningServer[] = [];
async function start(options: Parameters<typeof startTestServer>[0] = {}) {
  const server = await startTestServer(options);
  servers.push(server);
  return server;
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function png(rgb: [number, number, number], width = 16, height = 12) {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toBuffer();
}

async function upload(server: RunningServer, bytes: Uint8Array, name: string, subfolder: string) {
  const form = new FormData();
  form.append("image", new Blob([new Uint8Array(bytes)]), name);
  form.append("subfolder", subfolder);
  const response = await fetch(`${server.url}/api/upload`, { method: "POST", body: form, signal: AbortSignal.timeout(20_000) });
  expect(response.status).toBe(200);
  return (await response.json()) as { name: string; subfolder: string };
}

/** Each photo composited through its mask onto itself-sized grey, then saved. */
const composite = {
  format: "maskflow-workflow",
  version: 1,
  nodes: [
    { id: "1", type: "LoadImage", inputs: { image: "" } },
    { id: "2", type: "LoadMask", inputs: { image: "", channel: "luminance" } },
    { id: "3", type: "Composite", inputs: { destination: ["1", "image"], source: ["1", "image"], mask: ["2", "mask"] } },
    { id: "4", type: "SaveImage", inputs: { images: ["3", "image"], filename_prefix: "api" } },
  ],
};

async function finished(server: RunningServer, ids: string[]) {
  return Promise.all(ids.map((id) => server.queue.waitFor(id)));
}

describe("POST /api/prompt/batch", () => {
  it("queues one job per uploaded picture pair, each carrying its place in the batch through queue and history", async () => {
    const server = await start();
    for (const [name, rgb] of [["a", [255, 0, 0]], ["b", [0, 255, 0]], ["c10", [0, 0, 255]], ["c9", [9, 9, 9]]] as const) {
      await upload(server, await png([...rgb]), `${name}.png`, "photos");
      await upload(server, await png([255, 255, 255]), `${name}.png`, "masks/set1");
    }
    const { status, body } = await api(server, "POST", "/api/prompt/batch", { workflow: composite, inputs: { "1.image": "photos", "2.image": "masks/set1" } });
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body.batch).toEqual({ id: expect.any(String), count: 4 });
    expect(body.jobs.map((job: { name: string }) => job.name)).toEqual(["a", "b", "c9", "c10"]);
    expect(body.jobs[2].inputs).toEqual({ "1.image": "photos/c9.png", "2.image": "masks/set1/c9.png" });
    expect(body.jobs.map((job: { position: number }) => job.position)).toEqual([0, 1, 2, 3]);

    const entries = await finished(server, body.jobs.map((job: { id: string }) => job.id));
    for (const [index, entry] of entries.entries()) {
      expect(entry.status, entry.error?.message).toBe("success");
      expect(entry.batch).toEqual({ id: body.batch.id, index, count: 4, name: body.jobs[index].name });
      const saved = entry.outputs["4"].images[0];
      expect(saved.filename).toMatch(new RegExp(`^api_${body.jobs[index].name}_\\d{14}_\\d{5}\\.png$`));
    }
    // Each job read its own photo: c9's output is c9's grey, not another colour.
    const c9 = entries[2].outputs["4"].images[0];
    const { data } = await sharp(path.join(server.folders.output, c9.filename)).raw().toBuffer({ resolveWithObject: true });
    expect([...data.subarray(0, 3)]).toEqual([9, 9, 9]);
    // History pages carry the batch too (the queue panel groups by it).
    const history = (await api(server, "GET", "/api/history?max_items=10")).body as Array<{ batch?: { id: string } }>;
    expect(history.filter((entry) => entry.batch?.id === body.batch.id)).toHaveLength(4);
  });

  it("lists a batch's waiting jobs together in GET /api/queue, and refuses a batch the queue cannot hold, queuing none", async () => {
    const { registry } = createCountingRegistry();
    registry.register(LoadImageNode);
    const server = await start({ registry, maxPending: 3 });
    for (const name of ["p1", "p2", "p3", "p4"]) await upload(server, await png([1, 2, 3]), `${name}.png`, "four");
    for (const name of ["p1", "p2"]) await upload(server, await png([1, 2, 3]), `${name}.png`, "two");
    // LoadImage is what the batch sets; the slow chain keeps the jobs waiting long enough to look at them.
    const slow = workflow([
      { id: "1", type: "LoadImage", inputs: { image: "" } },
      { id: "2", type: "NumberSource" },
      { id: "3", type: "Slow", inputs: { a: ["2", "value"], steps: 400, ms: 5 } },
      { id: "4", type: "Collect", inputs: { value: ["3", "value"] } },
    ]);
    const four = await api(server, "POST", "/api/prompt/batch", { workflow: slow, inputs: { "1.image": "four" } });
    expect(four.status).toBe(400);
    expect(four.body.error).toMatchObject({ code: "batch_too_large", message: expect.stringMatching(/the batch has 4 jobs and the queue may have at most 3 waiting/) });

    const two = await api(server, "POST", "/api/prompt/batch", { workflow: slow, inputs: { "1.image": "two" } });
    expect(two.status).toBe(200);
    const queue = (await api(server, "GET", "/api/queue")).body;
    const batchOf = (job: { batch?: { id: string; index: number; count: number; name: string } }) => job.batch;
    expect([...queue.running, ...queue.pending].map(batchOf)).toEqual([
      { id: two.body.batch.id, index: 0, count: 2, name: "p1" },
      { id: two.body.batch.id, index: 1, count: 2, name: "p2" },
    ]);
    // One waits, so 2 places are left: a batch of 3 does not fit now, and none of it is queued.
    const single = await api(server, "POST", "/api/prompt", { workflow: { ...slow, nodes: slow.nodes.map((n) => (n.id === "1" ? { ...n, inputs: { image: "two/p1.png" } } : n)) } });
    expect(single.status).toBe(200);
    const three = await api(server, "POST", "/api/prompt/batch", { workflow: slow, inputs: { "1.image": "four" }, clientId: "x" });
    expect(three.status).toBe(400); // four pictures: over the queue's size
    await mkdir(path.join(server.folders.input, "three"));
    for (const name of ["q1", "q2", "q3"]) await writeFile(path.join(server.folders.input, "three", `${name}.png`), await png([1, 1, 1]));
    const full = await api(server, "POST", "/api/prompt/batch", { workflow: slow, inputs: { "1.image": "three" } });
    expect(full.status).toBe(429);
    expect(Number(full.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(full.body.error).toMatchObject({ code: "queue_full", message: expect.stringMatching(/the batch has 3 jobs and the queue has room for 1 more now; nothing was queued/) });
    expect((await api(server, "GET", "/api/queue")).body.pending).toHaveLength(2);
    await api(server, "POST", "/api/queue", { clear: true });
    await api(server, "POST", "/api/interrupt", {});
  });

  it("refuses folders outside the input folder, links, unmatched pictures and oversized batches with a 400 naming the input", async () => {
    const server = await start();
    const input = server.folders.input;
    await upload(server, await png([5, 5, 5]), "a.png", "photos");
    await upload(server, await png([5, 5, 5]), "b.png", "photos");
    await upload(server, await png([255, 255, 255]), "a.png", "masks");
    // The mask stays one picture unless the batch names a folder for it.
    const oneMask = { ...composite, nodes: composite.nodes.map((n) => (n.id === "2" ? { ...n, inputs: { ...n.inputs, image: "masks/a.png" } } : n)) };
    const post = (inputs: unknown, body: Record<string, unknown> = {}) => api(server, "POST", "/api/prompt/batch", { workflow: oneMask, inputs, ...body });

    // Unmatched: b has no mask. Nothing is queued.
    const unmatched = await post({ "1.image": "photos", "2.image": "masks" });
    expect(unmatched.status).toBe(400);
    expect(unmatched.body.error.code).toBe("unmatched_pictures");
    expect(unmatched.body.error.details.unmatched).toEqual([{ name: "b", reason: "photos/b.png has no partner in masks (no picture named b.*)" }]);

    // Names that leave the input folder, in every spelling.
    for (const name of ["..", "../..", "/etc", "photos/../..", "photos/../../x", "C:\\Windows", "a\0b", ".hidden"]) {
      const answer = await post({ "1.image": name });
      expect(answer.status, name).toBe(400);
      expect(answer.body.error.details?.field, `${name}: ${JSON.stringify(answer.body)}`).toBe("inputs.1.image");
    }
    expect((await post({ "1.image": "nowhere" })).body.error).toMatchObject({ code: "invalid_batch_folder", message: "inputs.1.image: input folder nowhere does not exist" });

    // A link planted in the input folder: to a folder outside, or a picture outside.
    const outside = await mkdtemp(path.join(os.tmpdir(), "maskflow-outside-"));
    await writeFile(path.join(outside, "secret.png"), await png([1, 2, 3]));
    await symlink(outside, path.join(input, "escape"));
    const escape = await post({ "1.image": "escape" });
    expect(escape.status).toBe(400);
    expect(escape.body.error.message).toMatch(/escape leads outside the input folder \(through a symbolic link\)/);
    await mkdir(path.join(input, "linked"));
    await symlink(path.join(outside, "secret.png"), path.join(input, "linked", "secret.png"));
    const linked = await post({ "1.image": "linked" });
    expect(linked.status).toBe(400);
    expect(linked.body.error.message).toMatch(/linked\/secret\.png is a symbolic link/);

    // Inputs that take no picture, unknown nodes, and a malformed body.
    expect((await post({ "4.filename_prefix": "photos" })).body.error.message).toMatch(/node 4 \(SaveImage\) has no picture input "filename_prefix"; inputs that take a picture here: 1\.image \(LoadImage\), 2\.image \(LoadMask\)/);
    expect((await post({ "9.image": "photos" })).body.error.message).toMatch(/no node "9"/);
    expect((await post({ image: "photos" })).body.error.message).toMatch(/must name a node input as NODE\.INPUT/);
    expect((await post({})).body.error).toMatchObject({ code: "invalid_request", message: expect.stringMatching(/inputs: gives 1 to 4 inputs/) });
    const offside = { ...oneMask, nodes: oneMask.nodes.map((n) => (n.id === "3" ? { ...n, inputs: { ...n.inputs, x: -99_999_999 } } : n)) };
    const badWorkflow = await api(server, "POST", "/api/prompt/batch", { workflow: offside, inputs: { "1.image": "photos" } });
    expect(badWorkflow.status).toBe(400);
    expect(badWorkflow.body.error).toMatchObject({ code: "invalid_workflow", details: { problems: [expect.objectContaining({ nodeId: "3", input: "x" })] } });

    // Too many pictures, too many entries, and a big workflow times many pictures.
    await mkdir(path.join(input, "many"));
    const tiny = await png([0, 0, 0], 8, 8);
    await Promise.all(Array.from({ length: 101 }, (_, i) => writeFile(path.join(input, "many", `m${i}.png`), tiny)));
    expect((await post({ "1.image": "many" }, { workflow: { ...composite, nodes: composite.nodes.filter((n) => n.id !== "2").map((n) => (n.id === "3" ? { ...n, inputs: { destination: ["1", "image"], source: ["1", "image"] } } : n)) } })).body.error).toMatchObject({
      code: "batch_too_large",
      message: expect.stringMatching(/the folders hold 101 pictures; a batch queues at most 100/),
    });
    await mkdir(path.join(input, "crowded"));
    await Promise.all(Array.from({ length: 1001 }, (_, i) => writeFile(path.join(input, "crowded", `n${i}.txt`), "")));
    expect((await post({ "1.image": "crowded" })).body.error.message).toMatch(/crowded holds more than 1,000 entries/);
    await mkdir(path.join(input, "nine"));
    await Promise.all(Array.from({ length: 9 }, (_, i) => writeFile(path.join(input, "nine", `k${i}.png`), tiny)));
    const big = { ...composite, description: "x".repeat(999_000), nodes: composite.nodes.filter((n) => n.id !== "2").map((n) => (n.id === "3" ? { ...n, inputs: { destination: ["1", "image"], source: ["1", "image"] } } : n)) };
    expect((await api(server, "POST", "/api/prompt/batch", { workflow: big, inputs: { "1.image": "nine" } })).body.error).toMatchObject({
      code: "batch_too_large",
      message: expect.stringMatching(/9 copies of a workflow of 999,\d{3} characters pass the batch limit of 4,000,000/),
    });
    // Nothing of all that was queued.
    expect((await api(server, "GET", "/api/queue")).body).toEqual({ running: [], pending: [] });
  });
});
