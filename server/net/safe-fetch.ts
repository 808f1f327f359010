// Fetches an image from a URL that a user supplied, without letting that URL reach this
// machine or its private network (SSRF). Every hop is resolved with DNS, every resolved address
// is checked, and the connection is made to exactly the address that was checked (a pinned
// lookup), so a DNS answer that changes between check and connect (rebinding) cannot slip
// through. Redirects are followed by hand so that each target is checked the same way.
import { promises as dns, type LookupAddress } from "node:dns";
import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import { canonicalIpAddress, parseIpAddress, whyAddressIsNotPublic } from "./ip-address-policy.ts";
import { ImageInputError } from "./image-input-error.ts";
import { detectImageType, quoteLeadingBytes, type ImageMediaType } from "./image-signature.ts";

export const DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024;
export const DEFAULT_FETCH_TIMEOUT_MS = 20_000;
export const DEFAULT_MAX_REDIRECTS = 5;

export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

export interface SafeFetchOptions {
  /** The request field the URL came from ("image", "mask"); every error message names it. */
  readonly field: string;
  readonly maxBytes?: number;
  /** For the whole fetch, redirects included. */
  readonly timeoutMs?: number;
  readonly maxRedirects?: number;
  /**
   * Allow loopback and private addresses (a trusted, local setup). Defaults to the environment:
   * MASKFLOW_ALLOW_PRIVATE_URLS=1.
   */
  readonly allowPrivateAddresses?: boolean;
  /** Exact addresses allowed even though they are not public (e.g. ["127.0.0.1"] for a local test server). */
  readonly allowedAddresses?: readonly string[];
  /** Hostname → addresses; defaults to the system resolver (dns.lookup, all addresses). */
  readonly resolve?: (hostname: string) => Promise<readonly ResolvedAddress[]>;
  readonly signal?: AbortSignal;
}

export interface FetchedImage {
  readonly bytes: Uint8Array;
  /** From the bytes' magic number, not the server's Content-Type. */
  readonly contentType: ImageMediaType;
  /** The URL the image finally came from, after redirects. */
  readonly url: string;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

export function privateUrlsAllowedByEnvironment(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = env.MASKFLOW_ALLOW_PRIVATE_URLS?.trim().toLowerCase();
  return value === "1" || value === "true" || value === "yes";
}

async function systemResolve(hostname: string): Promise<readonly ResolvedAddress[]> {
  const answers: LookupAddress[] = await dns.lookup(hostname, { all: true, verbatim: true });
  return answers.map((answer) => ({ address: answer.address, family: answer.family === 6 ? 6 : 4 }));
}

/** Fetches `url` as an image, within the size, time and redirect limits, from public addresses only. */
export async function fetchImageFromUrl(url: string, options: SafeFetchOptions): Promise<FetchedImage> {
  const { field } = options;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_IMAGE_BYTES;
  const maxRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  const timeoutMs = options.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;

  let current = parseHttpUrl(url, field);
  try {
    for (let redirects = 0; ; redirects += 1) {
      const address = await checkedAddress(current, options);
      const hop = await requestOnce(current, address, { field, maxBytes, signal });
      if (hop.kind === "image") return { bytes: hop.bytes, contentType: hop.contentType, url: current.href };
      if (redirects >= maxRedirects) {
        throw new ImageInputError(field, "too-many-redirects", `${url} redirected more than ${maxRedirects} times`);
      }
      current = parseHttpUrl(new URL(hop.location, current).href, field, `a redirect from ${current.href}`);
    }
  } catch (error) {
    if (options.signal?.aborted) throw options.signal.reason;
    if (timeout.aborted && !(error instanceof ImageInputError)) {
      throw new ImageInputError(field, "timeout", `fetching ${url} took longer than ${timeoutMs} ms`);
    }
    throw error;
  }
}

function parseHttpUrl(text: string, field: string, via?: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ImageInputError(field, "bad-url", `${JSON.stringify(text)} is not a valid URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    const from = via ? ` (${via})` : "";
    throw new ImageInputError(field, "bad-url", `only http and https URLs are fetched; got ${url.protocol}${from}`);
  }
  return url;
}

/** Resolves the URL's host and checks every address it has; answers the one to connect to. */
async function checkedAddress(url: URL, options: SafeFetchOptions): Promise<ResolvedAddress> {
  const { field } = options;
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const literal = parseIpAddress(host);
  let addresses: readonly ResolvedAddress[];
  if (literal !== undefined) {
    addresses = [{ address: host, family: literal.length === 4 ? 4 : 6 }];
  } else {
    try {
      addresses = await (options.resolve ?? systemResolve)(host);
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw new ImageInputError(field, "dns-failed", `could not resolve ${host}: ${why}`);
    }
    if (addresses.length === 0) throw new ImageInputError(field, "dns-failed", `${host} has no addresses`);
  }
  const allowPrivate = options.allowPrivateAddresses ?? privateUrlsAllowedByEnvironment();
  const allowed = new Set((options.allowedAddresses ?? []).map((address) => canonicalIpAddress(address) ?? address));
  // Every answer must pass: a host that resolves to one public and one private address is refused.
  for (const { address } of addresses) {
    if (allowPrivate || allowed.has(canonicalIpAddress(address) ?? address)) continue;
    const why = whyAddressIsNotPublic(address);
    if (why !== undefined) {
      const named = host === address ? address : `${host} (${address})`;
      throw new ImageInputError(
        field,
        "blocked-address",
        `refusing to fetch ${url.href}: ${named} is ${why}; set MASKFLOW_ALLOW_PRIVATE_URLS=1 to allow private addresses`,
      );
    }
  }
  return addresses[0];
}

/** A lookup that answers only the address already checked, whatever the hostname resolves to now. */
function pinnedLookup(pinned: ResolvedAddress): LookupFunction {
  return (_hostname, options, callback) => {
    const reply = callback as (...args: unknown[]) => void;
    if (options.all) reply(null, [{ address: pinned.address, family: pinned.family }]);
    else reply(null, pinned.address, pinned.family);
  };
}

type Hop =
  | { readonly kind: "image"; readonly bytes: Uint8Array; readonly contentType: ImageMediaType }
  | { readonly kind: "redirect"; readonly location: string };

interface HopOptions {
  readonly field: string;
  readonly maxBytes: number;
  readonly signal: AbortSignal;
}

function requestOnce(url: URL, address: ResolvedAddress, options: HopOptions): Promise<Hop> {
  const { field, maxBytes, signal } = options;
  const transport = url.protocol === "https:" ? https : http;
  return new Promise<Hop>((resolve, reject) => {
    const request = transport.request(url, {
      method: "GET",
      headers: { accept: "image/png,image/jpeg,image/webp,image/*;q=0.8", "user-agent": "maskflow" },
      lookup: pinnedLookup(address),
      // A fresh connection per request: a pooled socket would skip the address check.
      agent: false,
      signal,
    });
    request.on("error", (error) => {
      reject(
        signal.aborted
          ? error
          : new ImageInputError(field, "network", `could not fetch ${url.href}: ${error.message}`),
      );
    });
    request.on("response", (response) => {
      const status = response.statusCode ?? 0;
      const location = response.headers.location;
      if (REDIRECT_STATUSES.has(status) && location) {
        response.resume();
        request.destroy();
        resolve({ kind: "redirect", location });
        return;
      }
      if (status < 200 || status > 299) {
        response.resume();
        request.destroy();
        reject(new ImageInputError(field, "http-status", `${url.href} answered HTTP ${status} ${response.statusMessage ?? ""}`.trimEnd()));
        return;
      }
      const declared = Number(response.headers["content-length"]);
      if (Number.isFinite(declared) && declared > maxBytes) {
        request.destroy();
        reject(tooLarge(field, url, maxBytes));
        return;
      }
      const chunks: Buffer[] = [];
      let received = 0;
      response.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received > maxBytes) {
          // Stop reading at the limit: never hold more than maxBytes of someone else's data.
          request.destroy();
          reject(tooLarge(field, url, maxBytes));
          return;
        }
        chunks.push(chunk);
      });
      response.on("error", (error) => reject(error));
      response.on("end", () => {
        const bytes = new Uint8Array(Buffer.concat(chunks, received));
        const contentType = detectImageType(bytes);
        if (contentType === undefined) {
          reject(
            new ImageInputError(
              field,
              "not-an-image",
              `${url.href} did not return a JPEG, PNG or WebP image (Content-Type ${response.headers["content-type"] ?? "none"}); it began ${quoteLeadingBytes(bytes)}`,
            ),
          );
          return;
        }
        resolve({ kind: "image", bytes, contentType });
      });
    });
    request.end();
  });
}

function tooLarge(field: string, url: URL, maxBytes: number): ImageInputError {
  return new ImageInputError(field, "too-large", `${url.href} is larger than the ${formatBytes(maxBytes)} limit`);
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / (1024 * 1024)).toFixed(bytes % (1024 * 1024) === 0 ? 0 : 1)} MB` : `${bytes} bytes`;
}
