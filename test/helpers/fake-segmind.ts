// A local stand-in for api.segmind.com: a real HTTP server on 127.0.0.1 that enforces the
// sd1.5-inpainting contract (x-api-key, JSON body, Segmind's ranges via our shared schema, base64
// images that decode to images) and answers a real JPEG. Tests script failures (401, 406, 429
// with Retry-After, 5xx, slow answers, HTML instead of an image, dropped connections) and then
// inspect what the client sent.
import http from "node:http";
import type { AddressInfo } from "node:net";
import sharp from "sharp";
import { parseSegmindJsonBody, parseSegmindRequest } from "../../server/engines/segmind/segmind-request.ts";
import { SEGMIND_CREDITS_HEADER, SEGMIND_INPAINT_PATH } from "../../server/engines/segmind/segmind-client.ts";
import { decodeImageInput } from "../../server/net/decode-image-input.ts";

export type FakeSegmindReply =
  /** The normal answer: the JPEG (or base64 JSON when the request asked for it). */
  | { readonly kind: "image"; readonly delayMs?: number }
  | {
      readonly kind: "status";
      readonly status: number;
      /** JSON body (an object) or raw text; defaults to `{error: "<status text>"}`. */
      readonly body?: string | Record<string, unknown>;
      readonly headers?: Readonly<Record<string, string>>;
      readonly delayMs?: number;
    }
  /** 200 with an HTML page, as a captive portal or misrouted proxy would answer. */
  | { readonly kind: "html" }
  /** Close the connection without answering: a network failure. */
  | { readonly kind: "disconnect" };

export interface RecordedSegmindRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly rawBody: string;
  /** The parsed JSON body, or undefined when it was not JSON. */
  readonly body: Record<string, unknown> | undefined;
  /** The status the fake answered (0 for a dropped connection). */
  status: number;
}

export interface FakeSegmind {
  /** Base URL, e.g. http://127.0.0.1:41234 (give it to the client as baseUrl). */
  readonly url: string;
  readonly apiKey: string;
  /** The JPEG every successful answer carries. */
  readonly jpeg: Uint8Array;
  readonly requests: RecordedSegmindRequest[];
  /** Credits left; each image costs 0.002, and 0 or less answers 406. */
  credits: number;
  /** Script the next answers, in order; once the script runs out every request gets the image. */
  enqueue(...replies: FakeSegmindReply[]): void;
  /** Answer `reply` to the next `times` requests, then succeed. */
  failTimes(times: number, reply: FakeSegmindReply): void;
  close(): Promise<void>;
}

export const IMAGE_COST = 0.002;

export async function startFakeSegmind(options: { apiKey?: string; credits?: number } = {}): Promise<FakeSegmind> {
  const apiKey = options.apiKey ?? "SG_test_key";
  const jpeg = new Uint8Array(
    await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 200, g: 40, b: 90 } } })
      .jpeg({ quality: 80 })
      .toBuffer(),
  );
  const script: FakeSegmindReply[] = [];
  const requests: RecordedSegmindRequest[] = [];
  const state = { credits: options.credits ?? 10 };

  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const rawBody = Buffer.concat(chunks).toString("utf8");
      let body: Record<string, unknown> | undefined;
      try {
        const parsed: unknown = parseSegmindJsonBody(rawBody);
        body = parsed !== null && typeof parsed === "object" ? (parsed as Record<string, unknown>) : undefined;
      } catch {
        body = undefined;
      }
      const record: RecordedSegmindRequest = {
        method: request.method ?? "",
        path: request.url ?? "",
        headers: request.headers,
        rawBody,
        body,
        status: 0,
      };
      requests.push(record);
      void answer(request, response, record).catch((error: unknown) => {
        if (!response.headersSent) sendJson(response, record, 500, { error: String(error) });
      });
    });
  });

  function sendJson(response: http.ServerResponse, record: RecordedSegmindRequest, status: number, body: unknown, headers: Record<string, string> = {}) {
    record.status = status;
    response.writeHead(status, { "content-type": "application/json", ...headers });
    response.end(JSON.stringify(body));
  }

  async function answer(request: http.IncomingMessage, response: http.ServerResponse, record: RecordedSegmindRequest) {
    // The contract first: these answers do not consume the script.
    if (request.method !== "POST" || record.path !== SEGMIND_INPAINT_PATH) {
      return sendJson(response, record, 404, { error: `model not found: ${request.method} ${record.path}` });
    }
    const key = request.headers["x-api-key"];
    if (key === undefined || key !== apiKey) {
      return sendJson(response, record, 401, { error: key === undefined ? "x-api-key header missing" : "Invalid API key" });
    }
    if (!(request.headers["content-type"] ?? "").startsWith("application/json")) {
      return sendJson(response, record, 400, { error: "Content-Type must be application/json" });
    }
    if (record.body === undefined) return sendJson(response, record, 400, { error: "body is not a JSON object" });
    const parsed = parseSegmindRequest(record.body);
    if (!parsed.ok) {
      return sendJson(response, record, 400, { error: parsed.problems.map((problem) => problem.message).join("; ") });
    }
    for (const field of ["image", "mask"] as const) {
      const value = parsed.request[field];
      if (/^https?:\/\//i.test(value)) continue; // never fetched: tests send no traffic beyond 127.0.0.1
      try {
        await decodeImageInput(value, field);
      } catch (error) {
        return sendJson(response, record, 400, { error: error instanceof Error ? error.message : String(error) });
      }
    }

    const reply = script.shift() ?? { kind: "image" };
    if ((reply.kind === "image" || reply.kind === "status") && reply.delayMs) {
      await new Promise((resolve) => setTimeout(resolve, reply.delayMs));
      if (response.destroyed || request.socket.destroyed) return;
    }
    switch (reply.kind) {
      case "disconnect":
        record.status = 0;
        request.socket.destroy();
        return;
      case "html":
        record.status = 200;
        response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
        response.end("<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body>Try later</body></html>");
        return;
      case "status": {
        const text = http.STATUS_CODES[reply.status] ?? "error";
        if (typeof reply.body === "string") {
          record.status = reply.status;
          response.writeHead(reply.status, { "content-type": "text/plain", ...reply.headers });
          response.end(reply.body);
          return;
        }
        return sendJson(response, record, reply.status, reply.body ?? { error: text }, { ...reply.headers });
      }
      case "image": {
        if (state.credits <= 0) return sendJson(response, record, 406, { error: "Insufficient credits" });
        state.credits = Math.max(0, state.credits - IMAGE_COST);
        const credits = { [SEGMIND_CREDITS_HEADER]: state.credits.toFixed(3) };
        if (parsed.request.base64) {
          return sendJson(response, record, 200, { image: Buffer.from(jpeg).toString("base64") }, credits);
        }
        record.status = 200;
        response.writeHead(200, { "content-type": "image/jpeg", "content-length": String(jpeg.length), ...credits });
        response.end(Buffer.from(jpeg));
        return;
      }
    }
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    jpeg,
    requests,
    get credits() {
      return state.credits;
    },
    set credits(value: number) {
      state.credits = value;
    },
    enqueue: (...replies) => {
      script.push(...replies);
    },
    failTimes: (times, reply) => {
      for (let index = 0; index < times; index += 1) script.push(reply);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
