/**
 * What one Segmind request may cost the server: its pictures leave input/segmind when its job ends,
 * at most DEFAULT_MAX_PREPARING requests are read, fetched or decoded at once (one more is a 429), and a
 * caller that hangs up stops its downloads. The pictures come from a server on 127.0.0.1 that trickles
 * bytes, so requests stay in flight for as long as the test needs.
 */
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxEngine } from "../server/engines/onnx/onnx-engine.ts";
import { DEFAULT_MAX_PREPARING } from "../server/http/routes/segmind-routes.ts";
import { ensureTinyModels } from "./fixtures/make-tiny-models.ts";
import { api, startTestServer, type TestServer } from "./helpers/test-server.ts";

let server: TestServer;
let engine: OnnxEngine;
let imageBase64: string;
let maskBase64: string;
let trickle: TrickleServer;

/** Serves a "PNG" that never ends: the signature, then 1 KB every 10 ms; counts requests and early hang-ups. */
interface TrickleServer {
  readonly url: string;
  readonly requests: number;
  /** Connections closed by the other side before the picture was complete (all of them: it never is). */
  readonly closedEarly: number;
  /** Bytes sent in all, to see that a download stopped. */
  readonly bytesSent: number;
  close(): Promise<void>;
}

async function startTrickleServer(): Promise<TrickleServer> {
  const state = { requests: 0, closedEarly: 0, bytesSent: 0 };
  const timers = new Set<NodeJS.Timeout>();
  const httpServer = http.createServer((_req, res) => {
    state.requests++;
    res.writeHead(200, { "content-type": "image/png" });
    res.write(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    // 6,000 ticks at most (a minute): bounded even if nobody ever hangs up.
    let ticks = 0;
    const timer = setInterval(() => {
      if (++ticks > 6000) {
        clearInterval(timer);
        res.end();
        return;
      }
      res.write(Buffer.alloc(1024));
      state.bytesSent += 1024;
    }, 10);
    timers.add(timer);
    res.on("close", () => {
      clearInterval(timer);
      timers.delete(timer);
      if (!res.writableFinished) state.closedEarly++;
    });
  });
  httpServer.listen(0, "127.0.0.1");
  await new Promise((resolve) => httpServer.once("listening", resolve));
  return {
    url: `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}/slow.png`,
    get requests() {
      return state.requests;
    },
    get closedEarly() {
      return state.closedEarly;
    },
    get bytesSent() {
      return state.bytesSent;
    },
    async close() {
      for (const timer of timers) clearInterval(timer);
      httpServer.closeAllConnections();
      await new Promise((resolve) => httpServer.close(resolve));
    },
  };
}

/** Waits until `condition` holds, checking every 10 ms, at most `limit` times; says what it waited for if it never does. */
async function until(what: string, condition: () => boolean | Promise<boolean>, limit = 1000): Promise<void> {
  for (let i = 0; i < limit; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}

beforeAll(async () => {
  const models = await ensureTinyModels();
  engine = new OnnxEngine({ defaultModelDir: models.fp32, threads: 1 });
  server = await startTestServer({ engines: { local: engine }, allowedUrlAddresses: ["127.0.0.1"], releaseModels: () => engine.release() });
  imageBase64 = (await sharp({ create: { width: 512, height: 512, channels: 3, background: "#6688aa" } }).png().toBuffer()).toString("base64");
  const maskSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512"><rect width="512" height="512"/><circle cx="256" cy="256" r="80" fill="white"/></svg>`;
  maskBase64 = (await sharp(Buffer.from(maskSvg)).png().toBuffer()).toString("base64");
  trickle = await startTrickleServer();
});

afterAll(async () => {
  await server?.close();
  await trickle?.close();
  await engine?.release();
});

function request(overrides: Record<string, unknown> = {}) {
  return {
    image: imageBase64,
    mask: maskBase64,
    prompt: "a bench in a park",
    samples: 1,
    scheduler: "DDIM",
    num_inference_steps: 20,
    guidance_scale: 7.5,
    strength: 1,
    seed: 42,
    img_width: 512,
    img_height: 512,
    ...overrides,
  };
}

function post(body: unknown, signal: AbortSignal = AbortSignal.timeout(60_000)) {
  return fetch(`${server.url}/v1/sd1.5-inpainting`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal });
}

/** A request the test hangs up on later; its rejection (the abort) is expected and kept, not thrown. */
function postAndHangUpLater(body: unknown) {
  const hangUp = new AbortController();
  const outcome = post(body, hangUp.signal).then(
    (response) => ({ status: response.status, error: undefined as unknown }),
    (error: unknown) => ({ status: 0, error }),
  );
  return { hangUp: () => hangUp.abort(), outcome };
}

const segmindInputs = async () => readdir(path.join(server.folders.input, "segmind")).catch(() => [] as string[]);

describe("Segmind endpoint: what a request may hold", () => {
  it("removes a request's pictures when its job ends, whether it succeeded or was refused", async () => {
    const jobs: string[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await post(request({ seed: 100 + i }));
      expect(response.status).toBe(200);
      jobs.push(response.headers.get("x-maskflow-job-id")!);
    }
    // The image is saved before the mask fails: it goes all the same.
    const refused = await post(request({ mask: "http://127.0.0.1:9/no-such.png" }));
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(/^mask: /);
    expect(await segmindInputs()).toEqual([]);
    // The jobs are in history all the same; only their inputs are gone.
    for (const id of jobs) expect((await api(server, "GET", `/api/history/${id}`)).body).toMatchObject({ id, status: "success" });
  });

  it(`lets ${DEFAULT_MAX_PREPARING} requests fetch at once and answers one more with 429 and Retry-After`, async () => {
    const before = { requests: trickle.requests, closedEarly: trickle.closedEarly };
    const inFlight = Array.from({ length: DEFAULT_MAX_PREPARING }, () => postAndHangUpLater(request({ image: trickle.url })));
    await until(`${DEFAULT_MAX_PREPARING} downloads`, () => trickle.requests - before.requests === DEFAULT_MAX_PREPARING);

    const refused = await post(request());
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    const body = (await refused.json()) as { error: { code: string; message: string; details: unknown } };
    expect(body.error.code).toBe("too_many_preparing");
    expect(body.error.message).toMatch(new RegExp(`^${DEFAULT_MAX_PREPARING} Segmind requests are already being fetched or decoded \\(the limit\\); try again in about ${retryAfter} s$`));
    expect(body.error.details).toEqual({ maxPreparing: DEFAULT_MAX_PREPARING });
    // The refused request fetched nothing.
    expect(trickle.requests - before.requests).toBe(DEFAULT_MAX_PREPARING);

    for (const request of inFlight) request.hangUp();
    for (const { outcome } of inFlight) expect((await outcome).error).toBeInstanceOf(Error);
    await until("the downloads to stop", () => trickle.closedEarly - before.closedEarly === DEFAULT_MAX_PREPARING);
    // Their places are free again.
    expect((await post(request({ seed: 7 }))).status).toBe(200);
    expect(await segmindInputs()).toEqual([]);
  });

  it("stops the download when the caller hangs up, and removes the picture already saved", async () => {
    const before = { requests: trickle.requests, closedEarly: trickle.closedEarly };
    // The image (base64) is saved at once; the mask trickles in.
    const caller = postAndHangUpLater(request({ mask: trickle.url }));
    await until("the mask download", () => trickle.requests > before.requests);
    await until("the image to be saved", async () => (await segmindInputs()).length === 1);
    const sentAtHangUp = trickle.bytesSent;
    caller.hangUp();
    expect((await caller.outcome).status).toBe(0);
    await until("the download to stop", () => trickle.closedEarly > before.closedEarly);
    // The picture would have been 6 MB; the server took what had come by then and no more.
    expect(trickle.bytesSent - sentAtHangUp).toBeLessThan(1024 * 1024);
    await until("input/segmind to be empty", async () => (await segmindInputs()).length === 0);
    expect(server.log.text("error")).toBe("");
  });

  it("interrupts the job of a caller that hangs up while it runs, then removes its pictures", async () => {
    const caller = postAndHangUpLater(request({ num_inference_steps: 100, seed: 9 }));
    let jobId: string | null = null;
    await until("the job to run", () => (jobId = server.queue.status().running) !== null);
    expect(await segmindInputs()).toHaveLength(2);
    caller.hangUp();
    expect((await caller.outcome).status).toBe(0);
    expect((await server.queue.waitFor(jobId!)).status).toBe("interrupted");
    await until("input/segmind to be empty", async () => (await segmindInputs()).length === 0);
  });

  it("removes at start the pictures a killed server left behind, once they are a minute old", async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-segmind-leftovers-"));
    const folder = path.join(dataDir, "input", "segmind");
    await mkdir(folder, { recursive: true });
    const old = ["0b7c1a52-8f57-4c33-9f0e-2d6b3f6c1a01-image.png", "0b7c1a52-8f57-4c33-9f0e-2d6b3f6c1a01-mask.png"];
    const fresh = "7d1e2f30-1111-4a2b-8c3d-4e5f60718293-image.png";
    for (const name of [...old, fresh]) await writeFile(path.join(folder, name), Buffer.from(imageBase64, "base64"));
    const twoMinutesAgo = new Date(Date.now() - 120_000);
    for (const name of old) await utimes(path.join(folder, name), twoMinutesAgo, twoMinutesAgo);
    const restarted = await startTestServer({ dataDir });
    try {
      await until("the leftovers to go", async () => (await readdir(folder)).length === 1);
      // A fresh one may belong to a request still being prepared: it stays.
      expect(await readdir(folder)).toEqual([fresh]);
      expect(restarted.log.text("warn")).toBe("");
    } finally {
      await restarted.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
