// The client for Segmind's hosted SD 1.5 inpainting (`POST /v1/sd1.5-inpainting`). It validates
// the request against Segmind's documented ranges before anything leaves the process, retries
// only what may pass on its own (429, 502, 504, network failures), and turns every failure into
// a message a user can act on.
//
// Decisions, since Segmind's docs leave them open:
// - samples > 1: Segmind's default response is one media file, which holds one image. The client
//   therefore sends one request per sample (samples: 1 each) with seeds seed, seed+1, …, so the
//   caller always gets `samples` images and knows each image's seed. Segmind bills per image, so
//   this costs what one request with samples: N would.
// - 500 is not retried: the issue lists 429/502/504 only, and an internal error caused by the
//   request itself would repeat on every retry.
// - A client-side timeout is not retried: Segmind may still be computing (and billing) the image.
// - Remaining credits: read from the `x-remaining-credits` response header when present. That
//   header name comes from client code written against Segmind's API, not from Segmind's docs.
import { detectImageType, quoteLeadingBytes, type ImageMediaType } from "../../net/image-signature.ts";
import { parseRetryAfter } from "./retry-after.ts";
import { SegmindError } from "./segmind-error.ts";
import {
  parseSegmindRequest,
  serializeSegmindRequest,
  type SegmindRequest,
  type SegmindRequestInput,
} from "./segmind-request.ts";

export const SEGMIND_DEFAULT_BASE_URL = "https://api.segmind.com";
export const SEGMIND_INPAINT_PATH = "/v1/sd1.5-inpainting";
export const SEGMIND_CREDITS_HEADER = "x-remaining-credits";

const RETRYABLE_STATUSES = new Set([429, 502, 504]);
const SEED_MODULUS = 1n << 64n;
const DATA_URL_PREFIX = /^data:[^,]*;base64,/i;

export interface SegmindClientOptions {
  /**
   * The key, or a function asked on every call (the server's settings can change it while it runs).
   * Defaults to the SEGMIND_API_KEY environment variable.
   */
  readonly apiKey?: string | (() => string | undefined);
  /** Defaults to SEGMIND_BASE_URL, then https://api.segmind.com. */
  readonly baseUrl?: string;
  /** Per request attempt, from sending to the last byte of the answer. */
  readonly timeoutMs?: number;
  /** Retries after the first attempt, for 429/502/504 and network failures. */
  readonly maxRetries?: number;
  /** First backoff delay when Segmind gives no Retry-After; doubled on each retry, with jitter. */
  readonly retryBaseDelayMs?: number;
  /** Longest single wait between attempts; a longer Retry-After ends the retries. */
  readonly maxRetryDelayMs?: number;
  /** All waits between attempts of one request together stay under this. */
  readonly maxTotalRetryWaitMs?: number;
  readonly fetch?: typeof fetch;
}

export interface SegmindRetryEvent {
  /** The attempt about to be made (2 = first retry). */
  readonly attempt: number;
  readonly delayMs: number;
  readonly status?: number;
  readonly reason: string;
}

export interface SegmindCallOptions {
  readonly signal?: AbortSignal;
  readonly onRetry?: (event: SegmindRetryEvent) => void;
}

export interface SegmindInpaintResult {
  /** One image per requested sample, in order. */
  readonly images: Uint8Array[];
  /** Of the first image, from its magic number. */
  readonly contentType: ImageMediaType;
  /** From Segmind's `x-remaining-credits` header after the last request, when it sent one. */
  readonly remainingCredits?: number;
  /** The seed of the first image (−1 already resolved to the random seed that was used). */
  readonly seed: bigint;
  /** The seed of each image: seed, seed + 1, … */
  readonly seeds: bigint[];
}

interface AttemptImages {
  readonly images: Uint8Array[];
  readonly contentType: ImageMediaType;
  readonly remainingCredits?: number;
}

export class SegmindClient {
  readonly baseUrl: string;
  private readonly apiKeySource: () => string | undefined;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly retryBaseDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly maxTotalRetryWaitMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(options: SegmindClientOptions = {}) {
    const given = options.apiKey;
    this.apiKeySource =
      typeof given === "function" ? given : given !== undefined ? () => given : () => process.env.SEGMIND_API_KEY;
    this.baseUrl = (options.baseUrl ?? process.env.SEGMIND_BASE_URL ?? SEGMIND_DEFAULT_BASE_URL).replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.maxRetries = Math.max(0, Math.floor(options.maxRetries ?? 3));
    this.retryBaseDelayMs = options.retryBaseDelayMs ?? 1_000;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 30_000;
    this.maxTotalRetryWaitMs = options.maxTotalRetryWaitMs ?? 60_000;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
  }

  get endpoint(): string {
    return `${this.baseUrl}${SEGMIND_INPAINT_PATH}`;
  }

  /** True when a key is configured; the node can say so before the user runs a graph. */
  get hasApiKey(): boolean {
    return this.#apiKey() !== undefined;
  }

  #apiKey(): string | undefined {
    const key = this.apiKeySource()?.trim();
    return key ? key : undefined;
  }

  async inpaint(input: SegmindRequestInput, options: SegmindCallOptions = {}): Promise<SegmindInpaintResult> {
    const parsed = parseSegmindRequest(input);
    if (!parsed.ok) {
      const list = parsed.problems.map((problem) => problem.message).join("; ");
      throw new SegmindError(`invalid Segmind request: ${list}`, "invalid-request", { problems: parsed.problems });
    }
    const apiKey = this.#apiKey();
    if (apiKey === undefined) {
      throw new SegmindError(
        "no Segmind API key: set the SEGMIND_API_KEY environment variable (or the Segmind API key in the server settings) to a key from your Segmind account",
        "missing-api-key",
      );
    }
    const request = parsed.request;
    const seeds = Array.from({ length: request.samples }, (_, index) => (request.seed + BigInt(index)) % SEED_MODULUS);
    const images: Uint8Array[] = [];
    let contentType: ImageMediaType | undefined;
    let remainingCredits: number | undefined;
    for (const seed of seeds) {
      const single: SegmindRequest = {
        ...request,
        image: stripDataUrl(request.image),
        mask: stripDataUrl(request.mask),
        samples: 1,
        seed,
      };
      const answer = await this.sendWithRetries(apiKey, single, options);
      images.push(answer.images[0]);
      contentType ??= answer.contentType;
      remainingCredits = answer.remainingCredits ?? remainingCredits;
    }
    return {
      images,
      contentType: contentType ?? "image/jpeg",
      ...(remainingCredits === undefined ? {} : { remainingCredits }),
      seed: seeds[0],
      seeds,
    };
  }

  private async sendWithRetries(apiKey: string, request: SegmindRequest, options: SegmindCallOptions): Promise<AttemptImages> {
    const body = serializeSegmindRequest(request);
    let waited = 0;
    for (let attempt = 1; ; attempt += 1) {
      const retriesSoFar = attempt - 1;
      const outcome = await this.attempt(apiKey, body, request.base64, retriesSoFar, options.signal);
      if (outcome.kind === "images") return outcome.images;
      const { error } = outcome;
      if (!error.retryable || retriesSoFar >= this.maxRetries) throw error;
      const delayMs = outcome.retryAfterMs ?? this.backoffDelay(attempt);
      if (delayMs > this.maxRetryDelayMs || waited + delayMs > this.maxTotalRetryWaitMs) {
        const asked = outcome.retryAfterMs === undefined ? "" : `; Segmind asked to wait ${Math.ceil(delayMs / 1000)} s`;
        throw rewrap(error, `${error.message} (gave up after ${retriesSoFar} ${plural(retriesSoFar, "retry", "retries")}${asked}, beyond the retry time budget)`);
      }
      options.onRetry?.({ attempt: attempt + 1, delayMs, status: error.status, reason: error.message });
      await sleep(delayMs, options.signal);
      waited += delayMs;
    }
  }

  private backoffDelay(attempt: number): number {
    const exponential = this.retryBaseDelayMs * 2 ** (attempt - 1);
    // Jitter spreads retries from many jobs hitting the same rate limit.
    return Math.round(Math.min(this.maxRetryDelayMs, exponential * (0.75 + Math.random() * 0.5)));
  }

  private async attempt(
    apiKey: string,
    body: string,
    base64: boolean,
    retriesSoFar: number,
    signal: AbortSignal | undefined,
  ): Promise<
    | { readonly kind: "images"; readonly images: AttemptImages }
    | { readonly kind: "failed"; readonly error: SegmindError; readonly retryAfterMs?: number }
  > {
    signal?.throwIfAborted();
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const attemptSignal = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let response: Response;
    let bytes: Uint8Array;
    try {
      response = await this.fetchImpl(this.endpoint, {
        method: "POST",
        headers: {
          "x-api-key": apiKey,
          "content-type": "application/json",
          accept: base64 ? "application/json" : "image/jpeg, image/png, image/webp, application/json;q=0.5",
        },
        body,
        signal: attemptSignal,
      });
      bytes = new Uint8Array(await response.arrayBuffer());
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (timeout.aborted) {
        const seconds = this.timeoutMs / 1000;
        return {
          kind: "failed",
          error: new SegmindError(`Segmind did not answer within ${seconds} s (timeout; not retried, the image may still be billed)`, "timeout", {
            attempts: retriesSoFar + 1,
            cause: error,
          }),
        };
      }
      const why = describeNetworkError(error);
      return {
        kind: "failed",
        error: new SegmindError(
          `could not reach Segmind at ${this.baseUrl}: ${why}${retriedSuffix(retriesSoFar)}`,
          "network",
          { retryable: true, attempts: retriesSoFar + 1, cause: error },
        ),
      };
    }
    if (!response.ok) {
      const retryable = RETRYABLE_STATUSES.has(response.status);
      return {
        kind: "failed",
        error: this.statusError(response.status, readErrorDetail(bytes, response.headers.get("content-type")), retryable, retriesSoFar),
        retryAfterMs: retryable ? parseRetryAfter(response.headers.get("retry-after")) : undefined,
      };
    }
    const images = readImages(bytes, response.headers.get("content-type"));
    if (images instanceof SegmindError) return { kind: "failed", error: images };
    const credits = Number.parseFloat(response.headers.get(SEGMIND_CREDITS_HEADER) ?? "");
    return {
      kind: "images",
      images: { ...images, ...(Number.isFinite(credits) ? { remainingCredits: credits } : {}) },
    };
  }

  private statusError(status: number, detail: string | undefined, retryable: boolean, retriesSoFar: number): SegmindError {
    const said = detail ? `: ${detail}` : "";
    const retried = retryable ? retriedSuffix(retriesSoFar) : "";
    let message: string;
    switch (status) {
      case 400:
        message = `Segmind rejected the request as invalid (400)${said}`;
        break;
      case 401:
        message = `Segmind refused the API key (401: missing or invalid)${said}. Check the key: set SEGMIND_API_KEY (or the Segmind API key in the server settings) to a valid key from your Segmind account`;
        break;
      case 403:
        message = `Segmind forbade the request (403)${said}. The key may lack access to sd1.5-inpainting`;
        break;
      case 404:
        message = `Segmind has no model at ${this.endpoint} (404)${said}. Check SEGMIND_BASE_URL`;
        break;
      case 406:
        message = `Segmind says the account is out of credits (406)${said}. Add credits to the Segmind account`;
        break;
      case 429:
        message = `Segmind rate-limited the request (429)${said}${retried}. Wait a little and run again`;
        break;
      case 500:
        message = `Segmind had an internal server error (500)${said}`;
        break;
      case 502:
        message = `Segmind's gateway failed (502 bad gateway)${said}${retried}`;
        break;
      case 504:
        message = `Segmind timed out generating the image (504 gateway timeout)${said}${retried}`;
        break;
      default:
        message = `Segmind answered HTTP ${status}${said}${retried}`;
    }
    return new SegmindError(message, "http-status", { status, retryable, detail, attempts: retriesSoFar + 1 });
  }
}

function retriedSuffix(retries: number): string {
  return retries > 0 ? ` (retried ${retries} ${plural(retries, "time", "times")})` : "";
}

function plural(count: number, one: string, many: string): string {
  return count === 1 ? one : many;
}

function rewrap(error: SegmindError, message: string): SegmindError {
  return new SegmindError(message, error.code, error.options);
}

function stripDataUrl(value: string): string {
  return value.replace(DATA_URL_PREFIX, "");
}

function describeNetworkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause : undefined;
  const code = cause && "code" in cause ? String((cause as { code: unknown }).code) : undefined;
  return [error.message, cause?.message, code && !cause?.message.includes(code) ? code : undefined]
    .filter(Boolean)
    .join(": ");
}

/** Segmind's own words from an error body: JSON {error} / {message} / {detail}, else the text. */
function readErrorDetail(bytes: Uint8Array, contentType: string | null): string | undefined {
  const text = new TextDecoder().decode(bytes.subarray(0, 2000)).trim();
  if (text.length === 0) return undefined;
  if (contentType?.includes("json") || text.startsWith("{")) {
    try {
      const body: unknown = JSON.parse(text);
      if (body !== null && typeof body === "object") {
        const record = body as Record<string, unknown>;
        for (const key of ["error", "message", "detail"]) {
          const value = record[key];
          if (typeof value === "string" && value.trim()) return value.trim();
          if (value !== undefined && value !== null) return JSON.stringify(value).slice(0, 300);
        }
      }
    } catch {
      // Not JSON after all: quote the text.
    }
  }
  const oneLine = text.replace(/\s+/g, " ");
  return oneLine.length > 300 ? `${oneLine.slice(0, 300)}...` : oneLine;
}

/** The images in a 200 answer: the bytes themselves, or base64 in JSON when base64 was asked for. */
function readImages(bytes: Uint8Array, contentTypeHeader: string | null): Omit<AttemptImages, "remainingCredits"> | SegmindError {
  const declared = (contentTypeHeader ?? "").split(";")[0].trim().toLowerCase();
  if (declared === "application/json" || declared.endsWith("+json")) return readJsonImages(bytes);
  const detected = detectImageType(bytes);
  if (declared.startsWith("image/") && detected !== undefined) return { images: [bytes], contentType: detected };
  return notAnImage(bytes, contentTypeHeader);
}

function readJsonImages(bytes: Uint8Array): Omit<AttemptImages, "remainingCredits"> | SegmindError {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return notAnImage(bytes, "application/json (unparseable)");
  }
  const record = body !== null && typeof body === "object" ? (body as Record<string, unknown>) : {};
  const candidates = [record.image, record.images, record.output].flatMap((value) =>
    typeof value === "string" ? [value] : Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : [],
  );
  const images: Uint8Array[] = [];
  for (const candidate of candidates) {
    const decoded = new Uint8Array(Buffer.from(stripDataUrl(candidate.trim()), "base64"));
    if (detectImageType(decoded) !== undefined) images.push(decoded);
  }
  if (images.length === 0) return notAnImage(bytes, "application/json without a base64 image in image/images");
  return { images, contentType: detectImageType(images[0]) ?? "image/jpeg" };
}

function notAnImage(bytes: Uint8Array, contentType: string | null): SegmindError {
  return new SegmindError(
    `Segmind answered 200 but not with an image (Content-Type ${contentType ?? "none"}); the answer began ${quoteLeadingBytes(bytes)}`,
    "bad-response",
    { status: 200, attempts: 1 },
  );
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
