import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import sharp from "sharp";
import { decodeImageInput } from "../server/net/decode-image-input.ts";
import { ImageInputError } from "../server/net/image-input-error.ts";
import { canonicalIpAddress, whyAddressIsNotPublic } from "../server/net/ip-address-policy.ts";
import { fetchImageFromUrl, type SafeFetchOptions } from "../server/net/safe-fetch.ts";

// Only 127.0.0.1 is ever connected to. Addresses such as 10.0.0.1 and 169.254.169.254 appear in
// URLs and redirects, and the tests check that they are refused before any connection.

const MB = 1024 * 1024;
let png: Buffer;
let server: http.Server;
let base: string;
let port: number;
let connections = 0;
let streamedBytes = 0;
const hostHeaders: string[] = [];

beforeAll(async () => {
  png = await sharp({ create: { width: 4, height: 4, channels: 4, background: "#ff000080" } }).png().toBuffer();
  server = http.createServer((request, response) => {
    hostHeaders.push(request.headers.host ?? "");
    const url = new URL(request.url ?? "/", "http://local");
    switch (url.pathname) {
      case "/image.png":
        response.writeHead(200, { "content-type": "image/png" });
        response.end(png);
        return;
      case "/mislabelled":
        response.writeHead(200, { "content-type": "application/octet-stream" });
        response.end(png);
        return;
      case "/page.html":
        response.writeHead(200, { "content-type": "text/html" });
        response.end("<html><body>not an image</body></html>");
        return;
      case "/redirect":
        response.writeHead(302, { location: url.searchParams.get("to") ?? "/image.png" });
        response.end();
        return;
      case "/loop":
        response.writeHead(301, { location: "/loop" });
        response.end();
        return;
      case "/missing":
        response.writeHead(404);
        response.end("gone");
        return;
      case "/slow":
        setTimeout(() => {
          if (!response.destroyed) response.end(png);
        }, 3_000);
        return;
      case "/huge": {
        // 50 MB of zeros, streamed in 64 KiB chunks and only as fast as the client reads.
        const declare = url.searchParams.get("declare") === "1";
        response.writeHead(200, { "content-type": "image/png", ...(declare ? { "content-length": String(50 * MB) } : {}) });
        const chunk = Buffer.alloc(64 * 1024);
        let sent = 0;
        const pump = () => {
          while (sent < 50 * MB && !response.destroyed) {
            sent += chunk.length;
            streamedBytes += chunk.length;
            if (!response.write(chunk)) {
              response.once("drain", pump);
              return;
            }
          }
          if (!response.destroyed) response.end();
        };
        response.on("close", () => response.removeAllListeners("drain"));
        pump();
        return;
      }
      default:
        response.writeHead(404);
        response.end();
    }
  });
  server.on("connection", () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  connections = 0;
  streamedBytes = 0;
  hostHeaders.length = 0;
});

/** Only the local test server's address is allowed; everything else follows the public-only policy. */
const onlyLocal: SafeFetchOptions = { field: "image", allowPrivateAddresses: false, allowedAddresses: ["127.0.0.1"] };

async function refusal(promise: Promise<unknown>): Promise<ImageInputError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(ImageInputError);
  return error as ImageInputError;
}

describe("fetchImageFromUrl refuses non-public addresses", () => {
  it.each([
    ["loopback", () => `${base}/image.png`, "loopback"],
    ["IPv6 loopback", () => `http://[::1]:${port}/image.png`, "::1"],
    ["IPv4-mapped IPv6 loopback", () => `http://[::ffff:127.0.0.1]:${port}/image.png`, "wrapped in IPv6"],
    ["cloud metadata", () => "http://169.254.169.254/latest/meta-data/", "link-local"],
    ["private 10/8", () => "http://10.0.0.1/image.png", "private"],
    ["unspecified 0.0.0.0", () => `http://0.0.0.0:${port}/image.png`, "0.0.0.0/8"],
  ])("%s, without connecting", async (_name, url, why) => {
    const error = await refusal(fetchImageFromUrl(url(), { field: "mask", allowPrivateAddresses: false }));
    expect(error.problem).toBe("blocked-address");
    expect(error.field).toBe("mask");
    expect(error.message.startsWith("mask: refusing to fetch")).toBe(true);
    expect(error.message).toContain(why);
    expect(connections).toBe(0);
  });

  it("checks the address DNS gives, not the name", async () => {
    const error = await refusal(fetchImageFromUrl(`http://localhost:${port}/image.png`, { field: "image", allowPrivateAddresses: false }));
    expect(error.message).toMatch(/localhost \((127\.0\.0\.1|::1)\) is .*loopback/);
    expect(connections).toBe(0);
  });

  it("refuses a host when any of its addresses is private", async () => {
    const resolve = async () => [
      { address: "93.184.216.34", family: 4 as const },
      { address: "192.168.1.10", family: 4 as const },
    ];
    const error = await refusal(fetchImageFromUrl("http://mixed.test/image.png", { field: "image", allowPrivateAddresses: false, resolve }));
    expect(error.message).toContain("mixed.test (192.168.1.10) is a private address");
  });

  it("a non-http scheme is refused", async () => {
    const error = await refusal(fetchImageFromUrl("file:///etc/passwd", onlyLocal));
    expect(error.problem).toBe("bad-url");
    expect(error.message).toContain("only http and https");
  });
});

describe("fetchImageFromUrl with allowed addresses", () => {
  it("fetches a PNG when private addresses are allowed", async () => {
    const image = await fetchImageFromUrl(`${base}/image.png`, { field: "image", allowPrivateAddresses: true });
    expect(image.contentType).toBe("image/png");
    expect(Buffer.from(image.bytes).equals(png)).toBe(true);
  });

  it("fetches a PNG from exactly the allowed address, judging by bytes not Content-Type", async () => {
    const image = await fetchImageFromUrl(`${base}/mislabelled`, onlyLocal);
    expect(image.contentType).toBe("image/png");
  });

  it("connects to the checked address, keeping the URL's host name", async () => {
    const resolved: string[] = [];
    const resolve = async (host: string) => {
      resolved.push(host);
      return [{ address: "127.0.0.1", family: 4 as const }];
    };
    const image = await fetchImageFromUrl(`http://images.maskflow.test:${port}/image.png`, { ...onlyLocal, resolve });
    expect(image.bytes.length).toBe(png.length);
    expect(resolved).toEqual(["images.maskflow.test"]);
    expect(hostHeaders).toEqual([`images.maskflow.test:${port}`]);
  });

  it("follows a redirect that stays on an allowed address", async () => {
    const image = await fetchImageFromUrl(`${base}/redirect?to=/image.png`, onlyLocal);
    expect(image.url).toBe(`${base}/image.png`);
  });

  it.each([
    ["10.0.0.1", "http://10.0.0.1/secret.png", "private address (10.0.0.0/8)"],
    ["the metadata service", "http://169.254.169.254/latest/meta-data/", "link-local"],
    ["a name that resolves to the metadata service", "http://metadata.maskflow.test/", "metadata.maskflow.test (169.254.169.254)"],
  ])("refuses a redirect to %s without connecting to it", async (_name, target, why) => {
    const resolve = async (host: string) =>
      host === "metadata.maskflow.test" ? [{ address: "169.254.169.254", family: 4 as const }] : [];
    const error = await refusal(fetchImageFromUrl(`${base}/redirect?to=${encodeURIComponent(target)}`, { ...onlyLocal, resolve }));
    expect(error.problem).toBe("blocked-address");
    expect(error.message).toContain(why);
    expect(hostHeaders).toHaveLength(1); // only the first hop, to the test server
  });

  it("refuses a redirect to another scheme", async () => {
    const error = await refusal(fetchImageFromUrl(`${base}/redirect?to=${encodeURIComponent("file:///etc/passwd")}`, onlyLocal));
    expect(error.problem).toBe("bad-url");
  });

  it("stops after too many redirects", async () => {
    const error = await refusal(fetchImageFromUrl(`${base}/loop`, { ...onlyLocal, maxRedirects: 5 }));
    expect(error.problem).toBe("too-many-redirects");
    expect(error.message).toContain("more than 5 times");
    expect(hostHeaders).toHaveLength(6);
  });

  it("cuts a 50 MB answer off at the size limit", async () => {
    const error = await refusal(fetchImageFromUrl(`${base}/huge`, { ...onlyLocal, maxBytes: 2 * MB }));
    expect(error.problem).toBe("too-large");
    expect(error.message).toContain("2 MB limit");
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(streamedBytes).toBeLessThan(20 * MB);
  });

  it("refuses a declared Content-Length over the default 20 MB limit before reading", async () => {
    const error = await refusal(fetchImageFromUrl(`${base}/huge?declare=1`, onlyLocal));
    expect(error.problem).toBe("too-large");
    expect(error.message).toContain("20 MB limit");
  });

  it("refuses content that is not an image, quoting it", async () => {
    const error = await refusal(fetchImageFromUrl(`${base}/page.html`, onlyLocal));
    expect(error.problem).toBe("not-an-image");
    expect(error.message).toContain('"<html><body>not an image');
  });

  it("reports an HTTP error status", async () => {
    const error = await refusal(fetchImageFromUrl(`${base}/missing`, onlyLocal));
    expect(error.problem).toBe("http-status");
    expect(error.message).toContain("HTTP 404");
  });

  it("gives up after the time limit", async () => {
    const started = Date.now();
    const error = await refusal(fetchImageFromUrl(`${base}/slow`, { ...onlyLocal, timeoutMs: 200 }));
    expect(error.problem).toBe("timeout");
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("an AbortSignal ends the fetch with its reason", async () => {
    const controller = new AbortController();
    const reason = new Error("cancelled");
    setTimeout(() => controller.abort(reason), 50);
    await expect(fetchImageFromUrl(`${base}/slow`, { ...onlyLocal, signal: controller.signal })).rejects.toBe(reason);
  });
});

describe("decodeImageInput", () => {
  it("decodes a data URL and bare base64", async () => {
    const fromDataUrl = await decodeImageInput(`data:image/png;base64,${png.toString("base64")}`, "image");
    expect(fromDataUrl.source).toBe("data-url");
    expect(Buffer.from(fromDataUrl.bytes).equals(png)).toBe(true);
    const fromBase64 = await decodeImageInput(png.toString("base64"), "mask");
    expect(fromBase64.contentType).toBe("image/png");
  });

  it("fetches an http URL through the safe fetch", async () => {
    const fetched = await decodeImageInput(`${base}/image.png`, "image", { allowedAddresses: ["127.0.0.1"] });
    expect(fetched.source).toBe("url");
    const error = await refusal(decodeImageInput(`${base}/image.png`, "image", { allowPrivateAddresses: false }));
    expect(error.problem).toBe("blocked-address");
  });

  it("names the field when the bytes are not an image", async () => {
    const error = await refusal(decodeImageInput(Buffer.from("hello world, not a picture").toString("base64"), "mask"));
    expect(error.field).toBe("mask");
    expect(error.problem).toBe("not-an-image");
    expect(error.message).toContain('"hello world');
  });

  it("names the field when the text is not base64", async () => {
    const error = await refusal(decodeImageInput("this is not base64!", "image"));
    expect(error.message).toBe("image: is neither an http(s) URL nor valid base64");
    const scheme = await refusal(decodeImageInput("ftp://example.com/a.png", "image"));
    expect(scheme.problem).toBe("bad-url");
    const textData = await refusal(decodeImageInput("data:text/plain;base64,aGk=", "mask"));
    expect(textData.problem).toBe("not-an-image");
  });
});

describe("ip address policy", () => {
  it.each([
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.255",
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::ffff:a9fe:a9fe",
    "64:ff9b::a9fe:a9fe",
    "2002:7f00:1::",
    "fe80::1%eth0",
  ])("%s is not public", (address) => {
    expect(whyAddressIsNotPublic(address)).toBeDefined();
  });

  it.each(["8.8.8.8", "93.184.216.34", "172.32.0.1", "100.128.0.1", "169.255.0.1", "2606:4700::1111", "::ffff:8.8.8.8"])(
    "%s is public",
    (address) => {
      expect(whyAddressIsNotPublic(address)).toBeUndefined();
    },
  );

  it("compares IPv6 spellings canonically", () => {
    expect(canonicalIpAddress("[::FFFF:127.0.0.1]")).toBe(canonicalIpAddress("::ffff:7f00:1"));
    expect(canonicalIpAddress("not an address")).toBeUndefined();
  });
});
