import { spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxEngine, type LocalInpaintEngine } from "../server/engines/onnx/onnx-engine.ts";
import type { RunningServer } from "../server/maskflow-server.ts";
import { ensureTinyModels } from "./fixtures/make-tiny-models.ts";
import { startTestServer } from "./helpers/test-server.ts";

let server: RunningServer;
let keyed: RunningServer;
let engine: OnnxEngine;
let imageBase64: string;
let maskBase64: string;
let bigImageServer: http.Server;
let bigImageUrl: string;

beforeAll(async () => {
  const models = await ensureTinyModels();
  engine = new OnnxEngine({ defaultModelDir: models.fp32, threads: 1 });
  server = await startTestServer({ engines: { local: engine }, allowedUrlAddresses: ["127.0.0.1"], releaseModels: () => engine.release() });
  keyed = await startTestServer({ engines: { local: engine }, apiKeys: ["k-one", "k-two"] });
  imageBase64 = (await sharp({ create: { width: 512, height: 512, channels: 3, background: "#6688aa" } }).png().toBuffer()).toString("base64");
  const maskSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512"><rect width="512" height="512"/><circle cx="256" cy="256" r="80" fill="white"/></svg>`;
  maskBase64 = (await sharp(Buffer.from(maskSvg)).png().toBuffer()).toString("base64");
  // 50 MB of "PNG" streamed slowly enough to count, never held in memory at once.
  bigImageServer = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "image/png" });
    const header = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const chunk = Buffer.alloc(1024 * 1024);
    let sent = 0;
    res.write(header);
    const pump = () => {
      while (sent < 50 && res.write(chunk)) sent++;
      if (sent >= 50) res.end();
      else res.once("drain", pump);
    };
    res.on("close", () => (sent = 50));
    pump();
  });
  bigImageServer.listen(0, "127.0.0.1");
  await new Promise((resolve) => bigImageServer.once("listening", resolve));
  bigImageUrl = `http://127.0.0.1:${(bigImageServer.address() as AddressInfo).port}/big.png`;
});

afterAll(async () => {
  await server?.close();
  await keyed?.close();
  // Each step guards its own part: when setup failed half-way, what was never started must not hang the close.
  if (bigImageServer) {
    bigImageServer.closeAllConnections();
    await new Promise((resolve) => bigImageServer.close(resolve));
  }
  await engine?.release();
});

/** Segmind's documentation example, with small base64 images. */
function docsExample(overrides: Record<string, unknown> = {}) {
  return {
    image: imageBase64,
    mask: maskBase64,
    prompt: "mecha robot sitting on a bench",
    negative_prompt: "Disfigured, cartoon, blurry, nude",
    samples: 1,
    scheduler: "DDIM",
    num_inference_steps: 25,
    guidance_scale: 7.5,
    strength: 1,
    seed: 17123564234,
    img_width: 512,
    img_height: 512,
    ...overrides,
  };
}

async function post(target: RunningServer, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${target.url}/v1/sd1.5-inpainting`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
}

describe("Segmind-compatible endpoint", () => {
  it("answers Segmind's documentation example with a 512×512 JPEG from the local engine", async () => {
    const response = await post(server, docsExample());
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("image/jpeg");
    expect(response.headers.get("x-seed")).toBe("17123564234");
    const jpeg = Buffer.from(await response.arrayBuffer());
    const meta = await sharp(jpeg).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["jpeg", 512, 512]);
    // It ran through the queue: the job is in history.
    const job = response.headers.get("x-maskflow-job-id")!;
    expect(server.history.get(job)?.status).toBe("success");
  });

  it("answers JSON with the base64 image when asked, accepts data URLs and the older imageUrl/maskUrl names", async () => {
    const response = await post(server, {
      ...docsExample({ base64: true, num_inference_steps: 20, seed: "18446744073709551615" }),
      image: `data:image/png;base64,${imageBase64}`,
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { image: string; seed: string };
    expect(body.seed).toBe("18446744073709551615");
    expect((await sharp(Buffer.from(body.image, "base64")).metadata()).format).toBe("jpeg");

    const legacy = docsExample({ num_inference_steps: 20 }) as Record<string, unknown>;
    legacy.imageUrl = legacy.image;
    legacy.maskUrl = legacy.mask;
    delete legacy.image;
    delete legacy.mask;
    expect((await post(server, legacy)).status).toBe(200);
  });

  it("gives 400 naming the field for every out-of-range value", async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ samples: 5 }, /samples/],
      [{ scheduler: "Fancy" }, /scheduler must be one of/],
      [{ num_inference_steps: 10 }, /num_inference_steps/],
      [{ num_inference_steps: 101 }, /num_inference_steps/],
      [{ guidance_scale: 30 }, /guidance_scale/],
      [{ strength: 0 }, /strength/],
      [{ img_width: 500 }, /img_width must be 512 or 768/],
      [{ img_height: 1024 }, /img_height/],
      [{ prompt: undefined }, /prompt/],
      [{ seed: -2 }, /seed/],
      // Refused by its length before it is parsed (BigInt's parse of 10,000,000 digits held the event loop for 8.8 s).
      [{ seed: "7".repeat(10_000_000) }, /seed must be an integer from -1 to \d+ \(-1 = random\); got "7{10,}\.\.\. \(at most 20 digits\)/],
      [{ image: "bm90IGFuIGltYWdl" }, /image/],
    ];
    for (const [overrides, message] of cases) {
      const response = await post(server, docsExample(overrides));
      const body = (await response.json()) as { error: { message: string } };
      expect(response.status, JSON.stringify(overrides)).toBe(400);
      expect(body.error.message, JSON.stringify(overrides)).toMatch(message);
    }
    expect((await post(server, "{not json")).status).toBe(400);
  });

  it("refuses image URLs to loopback and metadata addresses, and cuts off a 50 MB image", async () => {
    const keyless = await startTestServer({ engines: { local: engine } });
    try {
      for (const url of ["http://127.0.0.1:9/x.png", "http://169.254.169.254/latest/meta-data/", "http://[::1]/x.png", "http://10.0.0.1/x.png"]) {
        const response = await post(keyless, docsExample({ image: url }));
        expect(response.status, url).toBe(400);
        expect(((await response.json()) as { error: { message: string } }).error.message, url).toMatch(/^image: /);
      }
    } finally {
      await keyless.close();
    }
    // This server allows exactly 127.0.0.1, so the size limit is what stops it.
    const started = Date.now();
    const response = await post(server, docsExample({ image: bigImageUrl }));
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(/image.*(limit|larger|MB)/i);
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it("answers 429 with Retry-After when the queue is full", async () => {
    // The engine waits until the third request has its answer, so the first job is surely still running then.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const held: LocalInpaintEngine = {
      async inpaint(request, options) {
        await released;
        return engine.inpaint(request, options);
      },
    };
    const small = await startTestServer({ engines: { local: held }, maxPending: 1 });
    try {
      const body = docsExample({ num_inference_steps: 20 });
      const answers = [post(small, body), post(small, body), post(small, body)].map((p) =>
        p.then((r) => {
          if (r.status === 429) release();
          return { status: r.status, retryAfter: r.headers.get("retry-after") };
        }),
      );
      const statuses = await Promise.all(answers);
      const refused = statuses.filter((s) => s.status === 429);
      expect(statuses.filter((s) => s.status === 200)).toHaveLength(2);
      expect(refused).toHaveLength(1);
      expect(Number(refused[0].retryAfter)).toBeGreaterThanOrEqual(1);
    } finally {
      release();
      await small.close();
    }
  });

  it("requires a valid x-api-key when MASKFLOW_API_KEYS is set", async () => {
    expect((await post(keyed, docsExample())).status).toBe(401);
    expect((await post(keyed, docsExample(), { "x-api-key": "wrong" })).status).toBe(401);
    expect((await post(keyed, docsExample({ num_inference_steps: 20 }), { "x-api-key": "k-two" })).status).toBe(200);
  });

  it("POST /api/free unloads the model and drops the cache; the next request loads it again", async () => {
    expect((await post(server, docsExample({ num_inference_steps: 20 }))).status).toBe(200);
    expect(engine.status().loaded).toHaveLength(1);
    const freed = await fetch(`${server.url}/api/free`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(await freed.json()).toEqual({ freed: { models: true, cache: true } });
    expect(engine.status().loaded).toHaveLength(0);
    expect(server.executor.cache.size).toBe(0);
    expect((await post(server, docsExample({ num_inference_steps: 20 }))).status).toBe(200);
    expect(engine.status().loaded).toHaveLength(1);
    const bad = await fetch(`${server.url}/api/free`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"models": "yes"}' });
    expect(bad.status).toBe(400);
  });

  it("works for curl, as Segmind's docs call it", async () => {
    const body = JSON.stringify(docsExample({ num_inference_steps: 20 }));
    const stdout = await new Promise<Buffer>((resolve, reject) => {
      const child = spawn("curl", ["-sS", "-X", "POST", `${server.url}/v1/sd1.5-inpainting`, "-H", "Content-Type: application/json", "--data-binary", "@-", "-o", "-", "-w", "\n%{http_code} %{content_type}"]);
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => child.kill(), 60_000);
      child.stdout.on("data", (c: Buffer) => chunks.push(c));
      child.on("error", reject);
      child.on("close", () => {
        clearTimeout(timer);
        resolve(Buffer.concat(chunks));
      });
      child.stdin.end(body);
    });
    const text = stdout.subarray(stdout.length - 40).toString("latin1");
    expect(text).toMatch(/200 image\/jpeg$/);
    expect([...stdout.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
  });
});
