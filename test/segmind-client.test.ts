import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import sharp from "sharp";
import { SegmindClient, type SegmindClientOptions } from "../server/engines/segmind/segmind-client.ts";
import { SegmindError } from "../server/engines/segmind/segmind-error.ts";
import { parseRetryAfter } from "../server/engines/segmind/retry-after.ts";
import {
  parseSegmindJsonBody,
  parseSegmindRequest,
  SEGMIND_SCHEDULERS,
  serializeSegmindRequest,
  type SegmindRequestInput,
} from "../server/engines/segmind/segmind-request.ts";
import { startFakeSegmind, type FakeSegmind } from "./helpers/fake-segmind.ts";

let fake: FakeSegmind;
let pngBase64: string;

beforeAll(async () => {
  fake = await startFakeSegmind({ apiKey: "SG_secret" });
  const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: "#808080" } }).png().toBuffer();
  pngBase64 = png.toString("base64");
});

afterAll(async () => {
  await fake.close();
});

afterEach(() => {
  fake.requests.length = 0;
  fake.credits = 10;
});

function client(options: SegmindClientOptions = {}): SegmindClient {
  return new SegmindClient({ apiKey: fake.apiKey, baseUrl: fake.url, retryBaseDelayMs: 1, timeoutMs: 5_000, ...options });
}

function request(extra: Partial<SegmindRequestInput> = {}): SegmindRequestInput {
  return { image: pngBase64, mask: pngBase64, prompt: "a red chair", seed: 17123564234, ...extra };
}

async function failure(promise: Promise<unknown>): Promise<SegmindError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(SegmindError);
  return error as SegmindError;
}

describe("SegmindClient success", () => {
  it("posts the documented body with x-api-key and returns the JPEG and remaining credits", async () => {
    const result = await client().inpaint(request({ negative_prompt: "blurry" }));
    expect(result.images).toHaveLength(1);
    expect(Buffer.from(result.images[0]).equals(Buffer.from(fake.jpeg))).toBe(true);
    expect(result.contentType).toBe("image/jpeg");
    expect(result.remainingCredits).toBeCloseTo(9.998, 6);
    expect(result.seed).toBe(17123564234n);

    expect(fake.requests).toHaveLength(1);
    const sent = fake.requests[0];
    expect(sent.path).toBe("/v1/sd1.5-inpainting");
    expect(sent.headers["x-api-key"]).toBe("SG_secret");
    expect(sent.headers["content-type"]).toBe("application/json");
    expect(sent.body).toEqual({
      image: pngBase64,
      mask: pngBase64,
      prompt: "a red chair",
      negative_prompt: "blurry",
      samples: 1,
      scheduler: "DDIM",
      num_inference_steps: 20,
      guidance_scale: 7.5,
      strength: 1,
      seed: 17123564234,
      img_width: 512,
      img_height: 512,
      base64: false,
    });
  });

  it("sends seeds beyond 2^53 with every digit and resolves -1 to a concrete seed", async () => {
    const big = await client().inpaint(request({ seed: "18446744073709551615" }));
    expect(big.seed).toBe(18446744073709551615n);
    expect(fake.requests[0].rawBody).toContain('"seed":18446744073709551615}');

    const random = await client().inpaint(request({ seed: -1 }));
    expect(random.seed).toBeGreaterThanOrEqual(0n);
    expect(fake.requests[1].rawBody).toContain(`"seed":${random.seed}}`);
  });

  it("decodes the base64 JSON answer when base64 is true", async () => {
    const result = await client().inpaint(request({ base64: true }));
    expect(Buffer.from(result.images[0]).equals(Buffer.from(fake.jpeg))).toBe(true);
    expect(fake.requests[0].body?.base64).toBe(true);
  });

  it("returns one image per sample, one request each with consecutive seeds", async () => {
    const result = await client().inpaint(request({ samples: 3, seed: 100 }));
    expect(result.images).toHaveLength(3);
    expect(result.seeds).toEqual([100n, 101n, 102n]);
    expect(fake.requests.map((sent) => [sent.body?.samples, sent.body?.seed])).toEqual([
      [1, 100],
      [1, 101],
      [1, 102],
    ]);
    expect(result.remainingCredits).toBeCloseTo(10 - 3 * 0.002, 6);
  });

  it("sends data URLs as bare base64", async () => {
    await client().inpaint(request({ image: `data:image/png;base64,${pngBase64}` }));
    expect(fake.requests[0].body?.image).toBe(pngBase64);
  });
});

describe("SegmindClient failures that are not retried", () => {
  it("refuses to run without an API key, before any request", async () => {
    const error = await failure(client({ apiKey: "" }).inpaint(request()));
    expect(error.code).toBe("missing-api-key");
    expect(error.message).toContain("SEGMIND_API_KEY");
    expect(fake.requests).toHaveLength(0);
  });

  it("401: one request, Segmind's text and how to set the key", async () => {
    const error = await failure(client({ apiKey: "SG_wrong" }).inpaint(request()));
    expect(error.status).toBe(401);
    expect(error.retryable).toBe(false);
    expect(error.message).toContain("Invalid API key");
    expect(error.message).toContain("SEGMIND_API_KEY");
    expect(fake.requests).toHaveLength(1);
  });

  it("406: out of credits", async () => {
    fake.credits = 0;
    const error = await failure(client().inpaint(request()));
    expect(error.status).toBe(406);
    expect(error.message).toMatch(/out of credits/);
    expect(error.message).toContain("Insufficient credits");
    expect(fake.requests).toHaveLength(1);
  });

  it.each([
    [400, /rejected the request as invalid \(400\): bad scheduler for this model/],
    [403, /forbade the request \(403\)/],
    [404, /no model at .*\(404\)/],
    [500, /internal server error \(500\)/],
  ])("%i is reported with Segmind's text and never retried", async (status, pattern) => {
    fake.enqueue({ kind: "status", status, body: { error: "bad scheduler for this model" } });
    const error = await failure(client().inpaint(request()));
    expect(error.status).toBe(status);
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(pattern);
    expect(error.message).toContain("bad scheduler for this model");
    expect(fake.requests).toHaveLength(1);
  });

  it("quotes a plain-text error body", async () => {
    fake.enqueue({ kind: "status", status: 403, body: "Forbidden: key disabled" });
    const error = await failure(client().inpaint(request()));
    expect(error.detail).toBe("Forbidden: key disabled");
  });

  it("an HTML page instead of an image is an error quoting its first bytes", async () => {
    fake.enqueue({ kind: "html" });
    const error = await failure(client().inpaint(request()));
    expect(error.code).toBe("bad-response");
    expect(error.message).toContain("text/html");
    expect(error.message).toContain('"<!DOCTYPE html><html><head><title>Service Unavailable');
    expect(fake.requests).toHaveLength(1);
  });

  it("rejects invalid fields naming each one, before any request reaches Segmind", async () => {
    const error = await failure(
      client().inpaint(
        request({
          num_inference_steps: 150,
          scheduler: "Euler Fast" as never,
          img_width: 640 as never,
          guidance_scale: 0,
          strength: 1.5,
          samples: 5,
        }),
      ),
    );
    expect(error.code).toBe("invalid-request");
    const byField = Object.fromEntries(error.problems.map((problem) => [problem.field, problem.message]));
    expect(byField.num_inference_steps).toBe("num_inference_steps must be an integer from 20 to 100; got 150");
    expect(byField.scheduler).toContain('"DPM2 a Karras"');
    expect(byField.img_width).toBe("img_width must be 512 or 768; got 640");
    expect(byField.guidance_scale).toContain("from 0.1 to 25");
    expect(byField.strength).toContain("from 0.1 to 1");
    expect(byField.samples).toContain("from 1 to 4");
    expect(fake.requests).toHaveLength(0);
  });
});

describe("SegmindClient retries", () => {
  it("429 honours Retry-After, then succeeds", async () => {
    fake.enqueue({ kind: "status", status: 429, body: { error: "Too many requests" }, headers: { "retry-after": "1" } });
    const retries: number[] = [];
    const started = Date.now();
    const result = await client().inpaint(request(), { onRetry: (event) => retries.push(event.delayMs) });
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(retries).toEqual([1000]);
    expect(result.images).toHaveLength(1);
    expect(fake.requests.map((sent) => sent.status)).toEqual([429, 200]);
  });

  it("429 until the retries run out says how often it retried", async () => {
    fake.failTimes(3, { kind: "status", status: 429, body: { message: "rate limit exceeded" }, headers: { "retry-after": "0" } });
    const error = await failure(client({ maxRetries: 2 }).inpaint(request()));
    expect(error.status).toBe(429);
    expect(error.retryable).toBe(true);
    expect(error.message).toContain("retried 2 times");
    expect(error.message).toContain("rate limit exceeded");
    expect(fake.requests).toHaveLength(3);
  });

  it("gives up at once when Retry-After exceeds the retry budget", async () => {
    fake.enqueue({ kind: "status", status: 429, headers: { "retry-after": "120" } });
    const error = await failure(client({ maxRetryDelayMs: 5_000 }).inpaint(request()));
    expect(error.message).toContain("Segmind asked to wait 120 s");
    expect(fake.requests).toHaveLength(1);
  });

  it.each([502, 504])("%i is retried with backoff, then succeeds", async (status) => {
    fake.failTimes(2, { kind: "status", status });
    const events: number[] = [];
    const result = await client().inpaint(request(), { onRetry: (event) => events.push(event.status ?? 0) });
    expect(result.images).toHaveLength(1);
    expect(events).toEqual([status, status]);
    expect(fake.requests.map((sent) => sent.status)).toEqual([status, status, 200]);
  });

  it("a dropped connection is retried", async () => {
    fake.enqueue({ kind: "disconnect" });
    const result = await client().inpaint(request());
    expect(result.images).toHaveLength(1);
    expect(fake.requests).toHaveLength(2);
  });

  it("an unreachable server is a network error after the retries", async () => {
    const closed = await startFakeSegmind();
    const url = closed.url;
    await closed.close();
    const error = await failure(client({ baseUrl: url, maxRetries: 1 }).inpaint(request()));
    expect(error.code).toBe("network");
    expect(error.message).toContain(`could not reach Segmind at ${url}`);
    expect(error.message).toContain("retried 1 time");
  });
});

describe("SegmindClient cancellation", () => {
  it("a timeout aborts the request", async () => {
    fake.enqueue({ kind: "image", delayMs: 3_000 });
    const started = Date.now();
    const error = await failure(client({ timeoutMs: 200 }).inpaint(request()));
    expect(error.code).toBe("timeout");
    expect(error.message).toContain("0.2 s");
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(fake.requests).toHaveLength(1);
  });

  it("an AbortSignal aborts the request with the signal's reason", async () => {
    fake.enqueue({ kind: "image", delayMs: 3_000 });
    const controller = new AbortController();
    const reason = new Error("interrupted by the user");
    setTimeout(() => controller.abort(reason), 100);
    const started = Date.now();
    await expect(client().inpaint(request(), { signal: controller.signal })).rejects.toBe(reason);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("an AbortSignal also ends a wait between retries", async () => {
    fake.enqueue({ kind: "status", status: 429, headers: { "retry-after": "10" } });
    const controller = new AbortController();
    const started = Date.now();
    const promise = client({ maxRetryDelayMs: 20_000 }).inpaint(request(), {
      signal: controller.signal,
      onRetry: () => setTimeout(() => controller.abort(new Error("stop")), 50),
    });
    await expect(promise).rejects.toThrow("stop");
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(fake.requests).toHaveLength(1);
  });
});

describe("Segmind request schema", () => {
  it("fills Segmind's defaults and lists the eleven schedulers", () => {
    const parsed = parseSegmindRequest({ image: "https://example.com/a.png", mask: "https://example.com/m.png", prompt: "x", seed: 5 });
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.request).toMatchObject({ samples: 1, scheduler: "DDIM", num_inference_steps: 20, guidance_scale: 7.5, strength: 1, img_width: 512, img_height: 512, base64: false, seed: 5n });
    expect(SEGMIND_SCHEDULERS).toHaveLength(11);
  });

  it("accepts the older imageUrl/maskUrl names", () => {
    const parsed = parseSegmindRequest({ imageUrl: "https://example.com/a.png", maskUrl: "https://example.com/m.png", prompt: "x" });
    expect(parsed.ok && parsed.request.image).toBe("https://example.com/a.png");
    expect(parsed.ok && parsed.request.mask).toBe("https://example.com/m.png");
    expect(parsed.ok && "imageUrl" in parsed.request).toBe(false);
  });

  it("names missing and malformed fields", () => {
    const parsed = parseSegmindRequest({ prompt: "", image: "not base64!", seed: 2 ** 60 });
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    const fields = parsed.problems.map((problem) => problem.field).sort();
    expect(fields).toEqual(["image", "mask", "prompt", "seed"]);
    const seed = parsed.problems.find((problem) => problem.field === "seed");
    expect(seed?.message).toContain("as a string");
    const mask = parsed.problems.find((problem) => problem.field === "mask");
    expect(mask?.message).toContain("maskUrl");
  });

  it("rejects a body that is not an object", () => {
    const parsed = parseSegmindRequest(null);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.problems).toEqual([{ field: "body", message: "the request body must be a JSON object with image, mask and prompt" }]);
  });

  it("serialises a seed of 2^64 - 1 exactly", () => {
    const parsed = parseSegmindRequest({ image: pngBase64, mask: pngBase64, prompt: "x", seed: "18446744073709551615" });
    if (!parsed.ok) throw new Error("expected a valid request");
    const text = serializeSegmindRequest(parsed.request);
    expect(text.endsWith(',"seed":18446744073709551615}')).toBe(true);
    expect(() => JSON.parse(text)).not.toThrow();
  });

  it("parses a JSON body without rounding a large bare seed", () => {
    const body = parseSegmindJsonBody('{"prompt":"\\"seed\\": 1","seed": 18446744073709551615 }');
    expect(body).toEqual({ prompt: '"seed": 1', seed: "18446744073709551615" });
    expect(parseSegmindJsonBody('{"seed":42}')).toEqual({ seed: 42 });
  });

  it("rejects seeds out of range", () => {
    for (const seed of ["18446744073709551616", -2, 1.5, "12abc"]) {
      const parsed = parseSegmindRequest({ image: pngBase64, mask: pngBase64, prompt: "x", seed });
      expect(parsed.ok, String(seed)).toBe(false);
    }
  });
});

describe("parseRetryAfter", () => {
  it("reads seconds and HTTP dates", () => {
    const now = Date.parse("2025-01-01T00:00:00Z");
    expect(parseRetryAfter("3", now)).toBe(3000);
    expect(parseRetryAfter("Wed, 01 Jan 2025 00:00:05 GMT", now)).toBe(5000);
    expect(parseRetryAfter("Tue, 31 Dec 2024 23:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});
