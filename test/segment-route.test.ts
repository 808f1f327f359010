import { cp, mkdir, mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SegmentEngine } from "../server/engines/segment/segment-engine.ts";
import { ensureTinyHelperModels } from "./fixtures/make-tiny-helper-models.ts";
import { api, startTestServer, type TestServer } from "./helpers/test-server.ts";

const OBJECT = { left: 60, top: 40, right: 150, bottom: 120 };

/** A 240×160 PNG: a red object on blue. */
async function scenePng(): Promise<Buffer> {
  const width = 240;
  const height = 160;
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inside = x >= OBJECT.left && x < OBJECT.right && y >= OBJECT.top && y < OBJECT.bottom;
      data.set(inside ? [220, 40, 30] : [30, 60, 210], (y * width + x) * 3);
    }
  }
  return sharp(data, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

let modelsDir: string;
const servers: TestServer[] = [];
const engines: SegmentEngine[] = [];

beforeAll(async () => {
  const tiny = await ensureTinyHelperModels();
  modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-segment-models-"));
  await cp(tiny.samAcly, path.join(modelsDir, "mobile-sam"), { recursive: true });
});
afterAll(async () => {
  await Promise.all(servers.map((server) => server.close()));
  await Promise.all(engines.map((engine) => engine.release()));
});

async function setup(options: { apiKeys?: string[]; modelsDir?: string } = {}) {
  const segment = new SegmentEngine({ modelsDir: options.modelsDir ?? modelsDir, threads: 1 });
  engines.push(segment);
  const server = await startTestServer({ engines: { segment }, apiKeys: options.apiKeys ?? [] });
  servers.push(server);
  await mkdir(server.folders.input, { recursive: true });
  await writeFile(path.join(server.folders.input, "scene.png"), await scenePng());
  return server;
}

async function post(server: TestServer, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${server.url}/api/segment`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body), signal: AbortSignal.timeout(20_000) });
}

describe("POST /api/segment", () => {
  it("answers a click with the object's mask as a PNG, and reuses the picture's embedding for the next click", async () => {
    const server = await setup();
    const first = await post(server, { image: "scene.png", points: [{ x: 100, y: 80, positive: true }] });
    expect(first.status).toBe(200);
    expect(first.headers.get("content-type")).toBe("image/png");
    expect(first.headers.get("x-maskflow-embedding")).toBe("computed");
    const { data, info } = await sharp(Buffer.from(await first.arrayBuffer())).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([240, 160]);
    let inside = 0;
    let outside = 0;
    for (let y = 0; y < 160; y++) {
      for (let x = 0; x < 240; x++) {
        const isObject = x >= OBJECT.left && x < OBJECT.right && y >= OBJECT.top && y < OBJECT.bottom;
        if (data[y * 240 + x] === 255) isObject ? inside++ : outside++;
      }
    }
    expect(inside).toBeGreaterThan(0.9 * 90 * 80);
    expect(outside).toBeLessThan(0.05 * 90 * 80);

    const second = await post(server, { image: "scene.png", points: [{ x: 100, y: 80, positive: true }, { x: 10, y: 10, positive: false }] });
    expect(second.status).toBe(200);
    expect(second.headers.get("x-maskflow-embedding")).toBe("cached");
    expect(Number(second.headers.get("x-maskflow-score"))).toBeGreaterThan(0);
  });

  it("analyses a picture again once its file is replaced", async () => {
    const server = await setup();
    const click = { image: "scene.png", points: [{ x: 100, y: 80, positive: true }] };
    expect((await post(server, click)).headers.get("x-maskflow-embedding")).toBe("computed");
    expect((await post(server, click)).headers.get("x-maskflow-embedding")).toBe("cached");
    // The same name, other pixels (the object moved): a new file, so a new embedding and a mask where it is now.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const moved = await sharp(await scenePng()).flop().png().toBuffer();
    await writeFile(path.join(server.folders.input, "scene.png"), moved);
    const again = await post(server, { image: "scene.png", points: [{ x: 135, y: 80, positive: true }] });
    expect(again.headers.get("x-maskflow-embedding")).toBe("computed");
    const { data } = await sharp(Buffer.from(await again.arrayBuffer())).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    // Flopped: the object now spans x 90..179.
    expect(data[80 * 240 + 170]).toBe(255);
    expect(data[80 * 240 + 70]).toBe(0);
  });

  it("takes a box alone", async () => {
    const server = await setup();
    const response = await post(server, { image: "scene.png", box: { left: 20, top: 20, right: 200, bottom: 140 } });
    expect(response.status).toBe(200);
  });

  it("names the field of every bad input", async () => {
    const server = await setup();
    const cases: Array<[unknown, string]> = [
      [{ points: [{ x: 1, y: 1, positive: true }] }, "image:"],
      [{ image: "scene.png", points: [{ x: -1, y: 1, positive: true }] }, "points.0.x"],
      [{ image: "scene.png", points: [{ x: 1, y: 1 }] }, "points.0.positive"],
      [{ image: "scene.png", points: Array.from({ length: 65 }, () => ({ x: 1, y: 1, positive: true })) }, "points: at most 64 points"],
      [{ image: "scene.png", points: [], model: "../../etc" }, "model: a folder name under the models folder"],
      [{ image: "scene.png", points: [], url: "http://x" }, "url"],
    ];
    for (const [body, field] of cases) {
      const response = await api(server, "POST", "/api/segment", body);
      expect(response.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(response.body.error.code).toBe("invalid_request");
      expect(response.body.error.message).toContain(field);
    }
    const outside = await api(server, "POST", "/api/segment", { image: "scene.png", points: [{ x: 300, y: 10, positive: true }] });
    expect(outside.status).toBe(400);
    expect(outside.body.error).toMatchObject({ code: "invalid_prompt", message: "points[0] (300, 10) is outside the 240×160 picture" });
    const none = await api(server, "POST", "/api/segment", { image: "scene.png", points: [] });
    expect(none.body.error).toMatchObject({ code: "invalid_prompt", message: "give at least one point or a box" });
    const missing = await api(server, "POST", "/api/segment", { image: "nope.png", points: [{ x: 1, y: 1, positive: true }] });
    expect(missing.status).toBe(404);
    expect(missing.body.error.message).toBe('image: "nope.png" is not a file in the input folder');
    await writeFile(path.join(server.folders.input, "notes.png"), "not a picture");
    const garbage = await api(server, "POST", "/api/segment", { image: "notes.png", points: [{ x: 1, y: 1, positive: true }] });
    expect(garbage.status).toBe(400);
    expect(garbage.body.error.code).toBe("invalid_image");
  });

  describe("with a pixel limit below the picture's size", () => {
    const previous = process.env.MASKFLOW_MAX_PIXELS;
    afterEach(() => {
      if (previous === undefined) delete process.env.MASKFLOW_MAX_PIXELS;
      else process.env.MASKFLOW_MAX_PIXELS = previous;
    });

    it("refuses the picture from its header with 413", async () => {
      const server = await setup();
      process.env.MASKFLOW_MAX_PIXELS = "10000";
      const response = await api(server, "POST", "/api/segment", { image: "scene.png", points: [{ x: 1, y: 1, positive: true }] });
      expect(response.status).toBe(413);
      expect(response.body.error.code).toBe("picture_too_large");
      expect(response.body.error.message).toContain("240 × 160 = 38,400 pixels; the limit is 10,000 pixels (MASKFLOW_MAX_PIXELS)");
    });
  });

  it("needs the key when the server has keys", async () => {
    const server = await setup({ apiKeys: ["team-key"] });
    const refused = await post(server, { image: "scene.png", points: [{ x: 100, y: 80, positive: true }] });
    expect(refused.status).toBe(401);
    const allowed = await post(server, { image: "scene.png", points: [{ x: 100, y: 80, positive: true }] }, { "x-api-key": "team-key" });
    expect(allowed.status).toBe(200);
  });

  it("says how to get the model when it is not installed", async () => {
    const server = await setup({ modelsDir: await mkdtemp(path.join(os.tmpdir(), "maskflow-no-sam-")) });
    const response = await api(server, "POST", "/api/segment", { image: "scene.png", points: [{ x: 100, y: 80, positive: true }] });
    expect(response.status).toBe(503);
    expect(response.body.error.code).toBe("model_unavailable");
    expect(response.body.error.message).toContain("maskflow models pull mobile-sam");
  });
});

describe("GET /api/helper-models", () => {
  it("says which helper models are installed and how to pull the others", async () => {
    const server = await setup();
    const response = await api(server, "GET", "/api/helper-models");
    expect(response.status).toBe(200);
    const byName = Object.fromEntries((response.body.models as Array<{ name: string }>).map((model) => [model.name, model]));
    expect(byName["mobile-sam"]).toMatchObject({ installed: true, repo: "Acly/MobileSAM", kind: "segment-anything", problems: [] });
    expect(byName.lama).toMatchObject({ installed: false, repo: "Carve/LaMa-ONNX", bytes: 208_044_816, pullCommand: "npx maskflow models pull lama" });
  });
});
