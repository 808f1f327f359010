/**
 * Issue 11: each attack a web page or a network client could make on a Maskflow server, made with raw requests
 * (forged Origin and Host, multipart bodies built by hand, gzip bodies) against a real server on 127.0.0.1,
 * and each legitimate path next to it, so a refusal cannot pass by refusing everything.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import sharp from "sharp";
import { WebSocket } from "ws";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { OnnxEngine } from "../server/engines/onnx/onnx-engine.ts";
import type { RunningServer, ServerOptions } from "../server/maskflow-server.ts";
import { ensureTinyModels } from "./fixtures/make-tiny-models.ts";
import { createCountingRegistry, workflow } from "./helpers/counting-nodes.ts";
import { startTestServer } from "./helpers/test-server.ts";
import { connectClient } from "./helpers/ws-client.ts";
import { pngHeaderOnly } from "./helpers/png-header-only.ts";

const servers: RunningServer[] = [];
let clientDir = "";

beforeAll(async () => {
  // A stand-in for the built editor: the static files the server serves at "/".
  clientDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-security-client-"));
  await writeFile(path.join(clientDir, "index.html"), '<!doctype html><title>Maskflow</title><script type="module" src="./app.js"></script>');
  await writeFile(path.join(clientDir, "app.js"), "document.title = 'ready';\n");
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await rm(clientDir, { recursive: true, force: true });
});

async function start(options: Partial<ServerOptions> = {}) {
  const server = await startTestServer({ registry: createCountingRegistry().registry, clientDir, ...options });
  servers.push(server);
  return server;
}

interface RawAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  readonly json: any;
}

/** One HTTP request with exactly these headers (Host included, when given), as an attacker's page or program sends it. */
function raw(server: RunningServer, method: string, route: string, headers: Record<string, string> = {}, body?: Uint8Array | string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: "127.0.0.1", port: server.port, method, path: route, headers, timeout: 20_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => {
        const text = Buffer.concat(chunks);
        let json: unknown;
        try {
          json = JSON.parse(text.toString("utf8"));
        } catch {
          json = undefined;
        }
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text, json });
      });
      response.on("error", reject);
    });
    request.on("timeout", () => request.destroy(new Error(`${method} ${route} timed out`)));
    request.on("error", reject);
    request.end(body);
  });
}

/** A multipart/form-data body written out by hand: fields first, then the file part "image". */
function multipart(file: { name: string; bytes: Uint8Array; type?: string }, fields: Record<string, string> = {}) {
  const boundary = `----maskflow-test-${Math.random().toString(16).slice(2)}`;
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  parts.push(
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="${file.name}"\r\nContent-Type: ${file.type ?? "application/octet-stream"}\r\n\r\n`),
    Buffer.from(file.bytes),
    Buffer.from(`\r\n--${boundary}--\r\n`),
  );
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

function upload(server: RunningServer, file: { name: string; bytes: Uint8Array; type?: string }, fields: Record<string, string> = {}, headers: Record<string, string> = {}) {
  const { body, contentType } = multipart(file, fields);
  return raw(server, "POST", "/api/upload", { "content-type": contentType, ...headers }, body);
}

const own = (server: RunningServer) => `http://127.0.0.1:${server.port}`;

async function png(seed = 1, width = 8, height = 8) {
  return sharp({ create: { width, height, channels: 3, background: { r: seed % 256, g: (seed * 7) % 256, b: (seed * 13) % 256 } } }).png().toBuffer();
}

/** Opens a WebSocket with these headers: 101 when it opened, else the status it was refused with. */
function upgrade(server: RunningServer, headers: Record<string, string>, clientId = "probe"): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${server.port}/ws?clientId=${clientId}`, { headers, handshakeTimeout: 10_000 });
    socket.on("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      socket.terminate();
    });
    socket.on("open", () => {
      socket.close();
      resolve(101);
    });
    socket.on("error", reject);
  });
}

const slow = () =>
  workflow([
    { id: "1", type: "NumberSource" },
    { id: "2", type: "Slow", inputs: { a: ["1", "value"], steps: 1000, ms: 5 } },
    { id: "3", type: "Collect", inputs: { value: ["2", "value"] } },
  ]);

describe("cross-site requests and DNS rebinding", () => {
  it("refuses a request whose Origin is another site, null, or another port, and stores nothing", async () => {
    const server = await start();
    const picture = { name: "evil.png", bytes: await png() };
    for (const origin of ["http://evil.example", "null", `http://127.0.0.1:${server.port + 1}`, `http://localhost:${server.port}`, "file://"]) {
      const answer = await upload(server, picture, {}, { origin });
      expect(answer.status, origin).toBe(403);
      expect(answer.json.error.code, origin).toBe("forbidden_origin");
    }
    const prompt = await raw(server, "POST", "/api/prompt", { origin: "http://evil.example", "content-type": "text/plain" }, JSON.stringify({ workflow: slow() }));
    expect(prompt.status).toBe(403);
    expect(await readdir(server.folders.input)).toEqual([]);
    expect((await raw(server, "GET", "/api/queue")).json).toEqual({ running: [], pending: [] });
  });

  it("answers the editor's own origin and programs that send no Origin", async () => {
    const server = await start();
    const fromEditor = await upload(server, { name: "mine.png", bytes: await png() }, {}, { origin: own(server) });
    expect(fromEditor.status).toBe(200);
    expect(fromEditor.json).toEqual({ name: "mine.png", subfolder: "", type: "input" });
    const viaLocalhost = await raw(server, "GET", "/api/nodes", { host: `localhost:${server.port}`, origin: `http://localhost:${server.port}` });
    expect(viaLocalhost.status).toBe(200);
    const curl = await upload(server, { name: "curl.png", bytes: await png(2) });
    expect(curl.status).toBe(200);
  });

  it("refuses a Host that is not a loopback name (rebinding) on the API, the editor's pages and the WebSocket", async () => {
    const server = await start();
    for (const route of ["/api/history", "/api/settings", "/api/queue", "/", "/index.html"]) {
      const answer = await raw(server, "GET", route, { host: `rebind.evil.example:${server.port}` });
      expect(answer.status, route).toBe(403);
      expect(answer.json.error.code, route).toBe("forbidden_host");
    }
    // Same-origin as far as the page can tell (its Origin matches its Host), but the name is not this server's.
    const rebound = await raw(server, "GET", "/api/history", { host: "rebind.evil.example", origin: "http://rebind.evil.example" });
    expect(rebound.status).toBe(403);
    expect(await upgrade(server, { host: `rebind.evil.example:${server.port}` })).toBe(403);
    expect(await upgrade(server, { origin: "http://evil.example" })).toBe(403);
    expect(await upgrade(server, { origin: "null" })).toBe(403);
    expect(await upgrade(server, { origin: own(server) })).toBe(101);
    expect(await upgrade(server, {})).toBe(101);
  });

  it("answers a name the operator allowed (a reverse proxy's), with its https Origin", async () => {
    const server = await start({ allowedHosts: ["maskflow.example.org"] });
    const proxied = await raw(server, "GET", "/api/nodes", { host: "maskflow.example.org", origin: "https://maskflow.example.org" });
    expect(proxied.status).toBe(200);
    expect((await raw(server, "GET", "/api/nodes", { host: "other.example.org" })).status).toBe(403);
    expect((await raw(server, "GET", "/api/nodes", { host: "maskflow.example.org", origin: "https://evil.example.org" })).status).toBe(403);
    expect(await upgrade(server, { host: "maskflow.example.org", origin: "https://maskflow.example.org" })).toBe(101);
  });
});

describe("stored scripts", () => {
  it("stores a PNG named xss.html as xss.png and serves it as image/png that nothing may run", async () => {
    const server = await start();
    const polyglot = Buffer.concat([await png(), Buffer.from("<html><script>alert(document.cookie)</script></html>")]);
    const stored = await upload(server, { name: "xss.html", bytes: polyglot, type: "text/html" });
    expect(stored.status).toBe(200);
    expect(stored.json.name).toBe("xss.png");
    expect(await readdir(server.folders.input)).toEqual(["xss.png"]);
    const view = await raw(server, "GET", "/api/view?filename=xss.png&type=input");
    expect(view.status).toBe(200);
    expect(view.headers["content-type"]).toBe("image/png");
    expect(view.headers["x-content-type-options"]).toBe("nosniff");
    expect(view.headers["content-security-policy"]).toMatch(/default-src 'none'/);
    expect(view.headers["content-security-policy"]).toMatch(/sandbox/);
    expect(view.body.equals(polyglot)).toBe(true);
    expect((await raw(server, "GET", "/api/view?filename=xss.html&type=input")).status).toBe(404);
  });

  it("refuses SVG, HTML and text uploads with a 400 that names what they are and what is allowed", async () => {
    const server = await start();
    const cases = [
      { name: "a.svg", bytes: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'), is: /SVG/ },
      { name: "b.png", bytes: Buffer.from('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>'), is: /SVG/ },
      { name: "c.png", bytes: Buffer.from("<!DOCTYPE html><html><body><script>alert(1)</script>"), is: /HTML/ },
      { name: "d.png", bytes: Buffer.from("just some words"), is: /text/ },
    ];
    for (const { name, bytes, is } of cases) {
      const answer = await upload(server, { name, bytes, type: "image/png" });
      expect(answer.status, name).toBe(400);
      expect(answer.json.error.code, name).toBe("invalid_image");
      expect(answer.json.error.message, name).toMatch(is);
      expect(answer.json.error.message, name).toMatch(/PNG, JPEG, WebP or GIF/);
      expect(answer.json.error.details.field, name).toBe("image");
    }
    expect(await readdir(server.folders.input)).toEqual([]);
  });

  it("serves only pictures from /api/view, whatever a file placed in the folders is named", async () => {
    const server = await start();
    await writeFile(path.join(server.folders.output, "page.html"), "<script>alert(1)</script>");
    await writeFile(path.join(server.folders.output, "fake.png"), "<script>alert(1)</script>");
    await writeFile(path.join(server.folders.output, "real.webp"), await sharp(await png()).webp().toBuffer());
    for (const name of ["page.html", "fake.png"]) {
      const answer = await raw(server, "GET", `/api/view?filename=${name}&type=output`);
      expect(answer.status, name).toBe(415);
      expect(answer.json.error.code, name).toBe("not_a_picture");
    }
    const webp = await raw(server, "GET", "/api/view?filename=real.webp&type=output");
    expect(webp.status).toBe(200);
    expect(webp.headers["content-type"]).toBe("image/webp");
  });

  it("gives every answer nosniff, and the editor's pages a CSP with only its own scripts and no framing", async () => {
    const server = await start();
    const page = await raw(server, "GET", "/");
    expect(page.status).toBe(200);
    expect(page.body.toString()).toContain("<title>Maskflow</title>");
    const csp = String(page.headers["content-security-policy"]);
    expect(csp).toMatch(/script-src 'self'(;|$)/);
    expect(csp).toMatch(/frame-ancestors 'none'/);
    expect(page.headers["x-frame-options"]).toBe("DENY");
    expect(page.headers["referrer-policy"]).toBe("no-referrer");
    for (const answer of [page, await raw(server, "GET", "/app.js"), await raw(server, "GET", "/api/nodes"), await raw(server, "GET", "/nope"), await raw(server, "GET", "/", { origin: "http://evil.example" })]) {
      expect(answer.headers["x-content-type-options"]).toBe("nosniff");
    }
  });
});

describe("the key before the body; the editor's session", () => {
  it("answers 401 to a request without a key before reading its body, on every route and the Segmind endpoint", async () => {
    const server = await start({ apiKeys: ["team-key"] });
    const json = { "content-type": "application/json" };
    const bad = await raw(server, "POST", "/api/prompt", json, "{bad");
    expect(bad.status).toBe(401);
    expect(bad.json.error.code).toBe("missing_api_key");
    expect((await raw(server, "POST", "/v1/sd1.5-inpainting", json, "{bad")).status).toBe(401);
    expect((await upload(server, { name: "a.png", bytes: await png() })).status).toBe(401);
    // 51 KB of gzip that inflates to 21 MB of JSON: refused for want of a key, not inflated.
    const bomb = gzipSync(Buffer.from(`{"workflow":"${"0".repeat(21 * 1024 * 1024)}"}`));
    expect(bomb.length).toBeLessThan(64 * 1024);
    const gz = { ...json, "content-encoding": "gzip" };
    const bombed = await raw(server, "POST", "/api/prompt", gz, bomb);
    expect(bombed.status).toBe(401);
    // Proof that the body is not even looked at: a broken gzip stream is a 401 without a key, and only with one
    // does the server try to inflate it and fail.
    const broken = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x01, 0x02]);
    expect((await raw(server, "POST", "/api/prompt", gz, broken)).status).toBe(401);
    expect((await raw(server, "POST", "/api/prompt", { ...gz, "x-api-key": "team-key" }, broken)).status).toBe(400);
    expect((await raw(server, "POST", "/api/prompt", { ...json, "x-api-key": "team-key" }, "{bad")).json.error.code).toBe("malformed_json");
    expect(await upgrade(server, {})).toBe(401);
    expect(await upgrade(server, { "x-api-key": "team-key" })).toBe(101);
  });

  it("signs the editor in with a server-made HttpOnly SameSite=Strict cookie that never holds the key, and out again", async () => {
    const server = await start({ apiKeys: ["team-key"] });
    const editor = { origin: own(server) };
    expect((await raw(server, "POST", "/api/session", { ...editor, "x-api-key": "wrong" })).status).toBe(401);
    const signIn = await raw(server, "POST", "/api/session", { ...editor, "x-api-key": "team-key" });
    expect(signIn.status).toBe(200);
    const cookies = signIn.headers["set-cookie"] ?? [];
    const session = cookies.find((c) => c.startsWith("maskflow_session="))!;
    expect(session).toMatch(/; HttpOnly/);
    expect(session).toMatch(/; SameSite=Strict/);
    expect(session).toMatch(/; Path=\//);
    expect(session).not.toMatch(/Secure/);
    expect(session).not.toContain("team-key");
    const cookie = session.split(";")[0];
    expect((await raw(server, "GET", "/api/nodes", { cookie })).status).toBe(200);
    expect((await raw(server, "GET", "/api/view?filename=none.png&type=input", { cookie })).status).toBe(404);
    expect(await upgrade(server, { ...editor, cookie })).toBe(101);
    // The cookie is no key for a request another site starts, even if a browser were to send it.
    expect((await raw(server, "POST", "/api/queue", { cookie, origin: "http://evil.example", "content-type": "application/json" }, '{"clear":true}')).status).toBe(403);
    expect(await upgrade(server, { cookie, origin: "http://evil.example" })).toBe(403);
    // Behind https (the page's Origin says so), the cookie is Secure too.
    const proxied = await start({ apiKeys: ["team-key"], allowedHosts: ["maskflow.example.org"] });
    const secure = await raw(proxied, "POST", "/api/session", { host: "maskflow.example.org", origin: "https://maskflow.example.org", "x-api-key": "team-key" });
    expect(secure.headers["set-cookie"]?.find((c) => c.startsWith("maskflow_session="))).toMatch(/; Secure/);

    const signOut = await raw(server, "DELETE", "/api/session", { ...editor, cookie });
    expect(signOut.status).toBe(200);
    expect(signOut.headers["set-cookie"]?.find((c) => c.startsWith("maskflow_session="))).toMatch(/Max-Age=0/);
    const after = await raw(server, "GET", "/api/nodes", { cookie });
    expect(after.status).toBe(401);
    expect(after.json.error.code).toBe("invalid_api_key");
    expect(await upgrade(server, { ...editor, cookie })).toBe(401);
  });

  it("never takes a key from a script-readable cookie (older editors wrote one); signing in deletes it", async () => {
    const server = await start({ apiKeys: ["team-key"] });
    const answer = await raw(server, "GET", "/api/nodes", { cookie: "maskflow_api_key=team-key", origin: own(server) });
    expect(answer.status).toBe(401);
    const signIn = await raw(server, "POST", "/api/session", { "x-api-key": "team-key", cookie: "maskflow_api_key=team-key", origin: own(server) });
    expect(signIn.status).toBe(200);
    const cookies = signIn.headers["set-cookie"] ?? [];
    expect(cookies.find((c) => c.startsWith("maskflow_api_key="))).toMatch(/Max-Age=0/);
    const session = cookies.find((c) => c.startsWith("maskflow_session="))!;
    expect(session).toMatch(/HttpOnly/);
    expect(session).not.toContain("team-key");
    expect((await raw(server, "GET", "/api/nodes", { cookie: session.split(";")[0] })).status).toBe(200);
  });
});

describe("pixel bombs", () => {
  it("an upload declaring 16383² pixels is a 400 naming the limit, refused from its header before anything decodes it", async () => {
    const server = await start();
    const answer = await upload(server, { name: "bomb.png", bytes: pngHeaderOnly(16_383, 16_383) });
    expect(answer.status).toBe(400);
    expect(answer.json.error.code).toBe("too_many_pixels");
    expect(answer.json.error.message).toBe(
      "image: the picture is 16383 × 16383 = 268,402,689 pixels; the limit is 67,108,864 pixels (MASKFLOW_MAX_PIXELS)",
    );
    expect(await readdir(server.folders.folder("input"))).not.toContain("bomb.png");
  });
});

describe("names", () => {
  it("refuses long names and deep or long subfolders with a 400 naming the limit, never a server path", async () => {
    const server = await start();
    const bytes = await png();
    const long = await upload(server, { name: `${"a".repeat(5000)}.png`, bytes });
    expect(long.status).toBe(400);
    expect(long.json.error.message).toMatch(/limit is 128/);
    const deep = await upload(server, { name: "a.png", bytes }, { subfolder: "a/b/c/d" });
    expect(deep.status).toBe(400);
    expect(deep.json.error.message).toMatch(/limit is 3/);
    const wide = await upload(server, { name: "a.png", bytes }, { subfolder: "s".repeat(200) });
    expect(wide.status).toBe(400);
    expect(wide.json.error.message).toMatch(/limit is 128/);
    const odd = await upload(server, { name: "a.png", bytes }, { subfolder: "../x" });
    expect(odd.status).toBe(400);
    const view = await raw(server, "GET", `/api/view?type=input&filename=${"b".repeat(5000)}.png`);
    expect(view.status).toBe(400);
    for (const answer of [long, deep, wide, odd, view]) {
      const text = answer.body.toString();
      expect(text).not.toContain(server.folders.root);
      expect(text).not.toContain(os.tmpdir());
    }
    expect(await readdir(server.folders.input)).toEqual([]);
  });

  it("stores a dotfile under a name that can be viewed, and nests a subfolder up to three levels", async () => {
    const server = await start();
    const bytes = await png();
    const dot = await upload(server, { name: ".hidden.png", bytes });
    expect(dot.json).toEqual({ name: "hidden.png", subfolder: "", type: "input" });
    expect((await raw(server, "GET", "/api/view?filename=hidden.png&type=input")).status).toBe(200);
    const nested = await upload(server, { name: "n.png", bytes }, { subfolder: "a/b/c" });
    expect(nested.json).toEqual({ name: "n.png", subfolder: "a/b/c", type: "input" });
    expect((await raw(server, "GET", "/api/view?filename=n.png&subfolder=a/b/c&type=input")).status).toBe(200);
  });

  it("keeps the shipped examples read-only: an upload to subfolder examples is refused", async () => {
    const server = await start();
    const shipped = await raw(server, "GET", "/api/view?filename=examples/room.png&type=input");
    expect(shipped.status).toBe(200);
    for (const subfolder of ["examples", "Examples", "examples/deeper"]) {
      const answer = await upload(server, { name: "room.png", bytes: await png(9) }, { subfolder });
      expect(answer.status, subfolder).toBe(400);
      expect(answer.json.error.code, subfolder).toBe("read_only_subfolder");
    }
    const again = await raw(server, "GET", "/api/view?filename=examples/room.png&type=input");
    expect(again.body.equals(shipped.body)).toBe(true);
  });

  it("gives 20 simultaneous uploads of one name 20 files, each answer naming its own; overwrite replaces whole", async () => {
    const server = await start();
    const pictures = await Promise.all(Array.from({ length: 20 }, (_, i) => png(i + 1, 8 + i, 8)));
    const answers = await Promise.all(pictures.map((bytes) => upload(server, { name: "race.png", bytes }, { overwrite: "false" })));
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
    const names = answers.map((a) => a.json.name as string);
    expect(new Set(names).size).toBe(20);
    expect(names).toContain("race.png");
    expect((await readdir(server.folders.input)).filter((n) => !n.startsWith(".")).sort()).toEqual([...names].sort());
    for (const [i, name] of names.entries()) {
      expect((await readFile(path.join(server.folders.input, name))).equals(pictures[i]), name).toBe(true);
    }
    const replaced = await upload(server, { name: "race.png", bytes: pictures[5] }, { overwrite: "true" });
    expect(replaced.json.name).toBe("race.png");
    expect((await readFile(path.join(server.folders.input, "race.png"))).equals(pictures[5])).toBe(true);
    expect(await readdir(server.folders.input)).toHaveLength(20);
  });
});

describe("queue limits and the Segmind endpoint's client ids", () => {
  it("counts jobs without a clientId against their caller for --max-queue-per-client", async () => {
    const server = await start({ maxPendingPerClient: 1 });
    const json = { "content-type": "application/json" };
    const first = await raw(server, "POST", "/api/prompt", json, JSON.stringify({ workflow: slow() }));
    expect(first.status).toBe(200);
    for (let i = 0; i < 200 && !(await raw(server, "GET", "/api/queue")).json.running.length; i++) await new Promise((r) => setTimeout(r, 25));
    expect((await raw(server, "POST", "/api/prompt", json, JSON.stringify({ workflow: slow() }))).status).toBe(200);
    const over = await raw(server, "POST", "/api/prompt", json, JSON.stringify({ workflow: slow() }));
    expect(over.status).toBe(429);
    expect(over.json.error.code).toBe("client_queue_full");
    expect(over.json.error.message).toMatch(/address 127\.0\.0\.1/);
    await raw(server, "POST", "/api/queue", json, '{"clear":true}');
    await raw(server, "POST", "/api/interrupt", json, "{}");
  });

  it("gives each Segmind-endpoint request its own client id, so a WebSocket named segmind-api sees none of its events", async () => {
    const models = await ensureTinyModels();
    const engine = new OnnxEngine({ defaultModelDir: models.fp32, threads: 1 });
    try {
      const server = await start({ engines: { local: engine }, registry: undefined });
      const watcher = await connectClient(server.url, "segmind-api");
      try {
        const image = (await png(3, 512, 512)).toString("base64");
        const mask = (await sharp({ create: { width: 512, height: 512, channels: 3, background: "#ffffff" } }).png().toBuffer()).toString("base64");
        const request = { prompt: "a chair", image, mask, samples: 1, num_inference_steps: 20, img_width: 512, img_height: 512, base64: true, seed: 7 };
        const answer = await raw(server, "POST", "/v1/sd1.5-inpainting", { "content-type": "application/json" }, JSON.stringify(request));
        expect(answer.status, answer.body.toString().slice(0, 300)).toBe(200);
        const jobId = String(answer.headers["x-maskflow-job-id"]);
        const entry = (await raw(server, "GET", `/api/history/${jobId}`)).json;
        expect(entry.status).toBe("success");
        expect(entry.clientId).toMatch(/^segmind-[0-9a-f-]{36}$/);
        // The socket was live (it heard the queue's status change) yet heard nothing of the job itself.
        await watcher.waitFor((m) => m.type === "status" && m.data.status?.queueRemaining === 0 && watcher.messages.length > 1);
        expect(watcher.messages.filter((m) => m.type !== "status")).toEqual([]);
      } finally {
        watcher.close();
      }
    } finally {
      await engine.release();
    }
  });
});

describe("JSON errors everywhere", () => {
  it("answers unknown paths outside /api with a JSON 404 and still serves the editor's files", async () => {
    const server = await start();
    for (const [method, route] of [["GET", "/nope"], ["POST", "/nope"], ["GET", "/assets/missing.js"], ["DELETE", "/"]] as const) {
      const answer = await raw(server, method, route);
      expect(answer.status, `${method} ${route}`).toBe(404);
      expect(answer.headers["content-type"], `${method} ${route}`).toMatch(/^application\/json/);
      expect(answer.json.error.code, `${method} ${route}`).toBe("not_found");
    }
    const script = await raw(server, "GET", "/app.js");
    expect(script.status).toBe(200);
    expect(script.headers["content-type"]).toMatch(/javascript/);
  });
});
