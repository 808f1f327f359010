import { writeFile } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, startTestServer, type TestServer } from "./helpers/test-server.ts";
import { connectClient } from "./helpers/ws-client.ts";

/**
 * A patch fill of a 2048² hole in a 4096² picture of noise takes minutes (over 100 s on a 2-core
 * machine), far longer than a few HTTP round trips and than a test's time limit, so what happens during it
 * can be observed, and only an interrupt that ends the fill itself lets the test finish.
 */
const SIDE = 4096;
const HOLE = { from: 1024, to: 3072 };

function fillWorkflow() {
  return {
    format: "maskflow-workflow",
    version: 1,
    nodes: [
      { id: "1", type: "LoadImage", inputs: { image: "noise.png" } },
      { id: "2", type: "LoadMask", inputs: { image: "hole.png", channel: "red" } },
      { id: "3", type: "ClassicalFill", inputs: { image: ["1", "image"], mask: ["2", "mask"], method: "patch", radius: 8 } },
      { id: "4", type: "PreviewImage", inputs: { images: ["3", "image"] } },
    ],
  };
}

function growWorkflow() {
  return {
    format: "maskflow-workflow",
    version: 1,
    nodes: [
      { id: "1", type: "LoadMask", inputs: { image: "hole.png", channel: "red" } },
      { id: "2", type: "GrowMask", inputs: { mask: ["1", "mask"], pixels: 4 } },
      { id: "3", type: "MaskToImage", inputs: { mask: ["2", "mask"] } },
      { id: "4", type: "PreviewImage", inputs: { images: ["3", "image"] } },
    ],
  };
}

describe("heavy node work runs off the event loop", () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
    const noise = new Uint8Array(SIDE * SIDE * 3);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24;
    await writeFile(path.join(server.folders.input, "noise.png"), await sharp(noise, { raw: { width: SIDE, height: SIDE, channels: 3 } }).png({ compressionLevel: 0 }).toBuffer());
    const hole = new Uint8Array(SIDE * SIDE);
    for (let y = HOLE.from; y < HOLE.to; y++) hole.fill(255, y * SIDE + HOLE.from, y * SIDE + HOLE.to);
    await writeFile(path.join(server.folders.input, "hole.png"), await sharp(hole, { raw: { width: SIDE, height: SIDE, channels: 1 } }).png().toBuffer());
  });

  afterAll(async () => {
    await server?.close();
  });

  it("answers GET /api/system while a ClassicalFill runs, and an interrupt ends the fill at once", async () => {
    const client = await connectClient(server.url, "filler");
    try {
      const queued = await api(server, "POST", "/api/prompt", { workflow: fillWorkflow(), clientId: "filler" });
      expect(queued.status).toBe(200);
      await client.waitFor((m) => m.type === "executing" && m.data.node === "3", 30_000);

      // Several answers in a row, each while the fill is still going: the loop is free the whole time.
      for (let poll = 0; poll < 5; poll++) {
        const system = await api(server, "GET", "/api/system");
        expect(system.status).toBe(200);
        expect(system.body.queue.running).toBe(queued.body.id);
        expect(client.messages.some((m) => m.type === "executed" || m.type.startsWith("execution_"))).toBe(
          client.messages.some((m) => m.type === "execution_cached"),
        );
      }

      // Left alone the fill would outlast this test; interrupted, the worker is ended and the job stops.
      expect((await api(server, "POST", "/api/interrupt", {})).body.interrupted).toBe(true);
      const entry = await server.queue.waitFor(queued.body.id);
      expect(entry.status).toBe("interrupted");
      const ended = await client.waitFor((m) => m.type === "execution_interrupted");
      expect(ended.data.node).toBe("3");
      expect(client.messages.some((m) => m.type === "executed" && m.data.node === "3")).toBe(false);

      // The pool goes on after the ended worker: a job with a GrowMask (also on the pool) succeeds.
      const grow = await api(server, "POST", "/api/prompt", { workflow: growWorkflow(), clientId: "filler" });
      expect((await server.queue.waitFor(grow.body.id)).status).toBe("success");
    } finally {
      client.close();
    }
  });
});
