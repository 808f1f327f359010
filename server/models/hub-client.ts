import { connectionFailure, HubError, hubErrorFor, unreachableError } from "./hub-errors.ts";

/** One file of a repository at a revision, as the hub's tree API describes it. */
export interface HubFile {
  readonly path: string;
  readonly size: number;
  /** The LFS oid, present for files stored in LFS/Xet (the large ones). */
  readonly sha256?: string;
  /** The git blob id, which is what the hub gives for files stored in git itself. */
  readonly gitOid?: string;
}

export interface HubClientOptions {
  /** Base URL; $HF_ENDPOINT, else https://huggingface.co. */
  readonly endpoint?: string;
  /** Sent as `Authorization: Bearer`; $HF_TOKEN. */
  readonly token?: string;
  /** Attempts per request for network errors, 429 and 5xx (the first try included). */
  readonly maxAttempts?: number;
  /** Backoff before the n-th retry is retryDelayMs × 2^(n-1). */
  readonly retryDelayMs?: number;
  readonly onRetry?: (info: { what: string; attempt: number; delayMs: number; reason: string }) => void;
}

const DEFAULT_ENDPOINT = "https://huggingface.co";
/** Pages of the tree API; bounded so a misbehaving server cannot keep us looping. */
const MAX_TREE_PAGES = 1000;

/** Hugging Face hub client: just the calls `models pull` needs, with retries on transient failures. */
export class HubClient {
  readonly endpoint: string;
  readonly #token: string | undefined;
  readonly #maxAttempts: number;
  readonly #retryDelayMs: number;
  readonly #onRetry: HubClientOptions["onRetry"];
  readonly #customEndpoint: boolean;
  /** Set once any server answered: from then on a DNS or routing failure is a blip worth retrying. */
  #reached = false;

  constructor(options: HubClientOptions = {}) {
    this.endpoint = (options.endpoint || DEFAULT_ENDPOINT).replace(/\/+$/, "");
    this.#customEndpoint = Boolean(options.endpoint);
    this.#token = options.token || undefined;
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? 5);
    this.#retryDelayMs = options.retryDelayMs ?? 1000;
    this.#onRetry = options.onRetry;
  }

  static fromEnv(env: NodeJS.ProcessEnv, options: Omit<HubClientOptions, "endpoint" | "token"> = {}): HubClient {
    return new HubClient({ ...options, endpoint: env.HF_ENDPOINT, token: env.HF_TOKEN });
  }

  /** The commit a revision (branch, tag or commit) points at. */
  async resolveRevision(repo: string, revision: string): Promise<string | null> {
    const url = `${this.endpoint}/api/models/${repoPath(repo)}/revision/${encodeURIComponent(revision)}`;
    const response = await this.#request(url, `${repo}@${revision}`);
    const body = (await response.json()) as { sha?: unknown };
    return typeof body.sha === "string" ? body.sha : null;
  }

  /** Every file of the repository at `revision`, with sizes and digests (the tree API, following its pages). */
  async listFiles(repo: string, revision: string): Promise<HubFile[]> {
    const files: HubFile[] = [];
    let url: string | null = `${this.endpoint}/api/models/${repoPath(repo)}/tree/${encodeURIComponent(revision)}?recursive=true`;
    for (let page = 0; url && page < MAX_TREE_PAGES; page++) {
      const response: Response = await this.#request(url, `${repo}@${revision}`);
      const entries = (await response.json()) as unknown;
      if (!Array.isArray(entries)) throw new HubError(response.status, `${repo}@${revision}: unexpected tree listing from ${this.endpoint}`);
      for (const entry of entries) {
        const file = parseTreeEntry(entry);
        if (file) files.push(file);
      }
      url = nextPageUrl(response.headers.get("link"), this.endpoint);
    }
    return files;
  }

  /**
   * Starts downloading a file (redirects followed). With `start` > 0 asks for the rest only; the caller
   * checks whether the server honoured that (206) or sent the whole file (200).
   */
  async download(repo: string, revision: string, filePath: string, options: { start?: number; signal?: AbortSignal } = {}): Promise<Response> {
    const url = `${this.endpoint}/${repoPath(repo)}/resolve/${encodeURIComponent(revision)}/${filePath.split("/").map(encodeURIComponent).join("/")}`;
    const headers: Record<string, string> = {};
    if (options.start && options.start > 0) headers.range = `bytes=${options.start}-`;
    return this.#request(url, `${repo}@${revision}: ${filePath}`, { headers, signal: options.signal, acceptStatus: [416] });
  }

  /** Backoff before retry number `attempt` (1-based); exposed so the downloader retries a broken body the same way. */
  retryDelay(attempt: number): number {
    return this.#retryDelayMs * 2 ** (attempt - 1);
  }

  get maxAttempts(): number {
    return this.#maxAttempts;
  }

  notifyRetry(info: { what: string; attempt: number; delayMs: number; reason: string }): void {
    this.#onRetry?.(info);
  }

  async #request(
    url: string,
    what: string,
    options: { headers?: Record<string, string>; signal?: AbortSignal; acceptStatus?: number[] } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = { "user-agent": "maskflow", ...options.headers };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    for (let attempt = 1; ; attempt++) {
      let reason: string;
      try {
        const response = await fetch(url, { headers, redirect: "follow", signal: options.signal });
        this.#reached = true;
        if (response.ok || options.acceptStatus?.includes(response.status)) return response;
        await response.body?.cancel();
        if (response.status !== 429 && response.status < 500) throw hubErrorFor(response.status, what, response.headers.get("x-error-code"));
        reason = `HTTP ${response.status}`;
        if (attempt >= this.#maxAttempts) throw new HubError(response.status, `${what}: HTTP ${response.status} from ${this.endpoint} after ${attempt} attempts`);
      } catch (error) {
        if (error instanceof HubError || options.signal?.aborted) throw error;
        const failure = connectionFailure(error);
        if (failure && (failure.definitive || !this.#reached)) throw unreachableError(this.endpoint, this.#customEndpoint, failure);
        reason = describeNetworkError(error);
        if (attempt >= this.#maxAttempts) throw new Error(`${what}: ${reason} (after ${attempt} attempts)`);
      }
      const delayMs = this.retryDelay(attempt);
      this.notifyRetry({ what, attempt, delayMs, reason });
      await sleep(delayMs);
    }
  }
}

/** "org/name" with each part escaped, keeping the slash. */
function repoPath(repo: string): string {
  return repo.split("/").map(encodeURIComponent).join("/");
}

function parseTreeEntry(entry: unknown): HubFile | undefined {
  if (typeof entry !== "object" || entry === null) return undefined;
  const record = entry as Record<string, unknown>;
  if (record.type !== "file" || typeof record.path !== "string" || typeof record.size !== "number") return undefined;
  const lfs = typeof record.lfs === "object" && record.lfs !== null ? (record.lfs as Record<string, unknown>) : undefined;
  const sha256 = typeof lfs?.oid === "string" ? lfs.oid : undefined;
  const size = typeof lfs?.size === "number" ? lfs.size : record.size;
  return { path: record.path, size, sha256, gitOid: sha256 ? undefined : typeof record.oid === "string" ? record.oid : undefined };
}

/** The hub pages long listings with `Link: <url>; rel="next"`. */
function nextPageUrl(link: string | null, endpoint: string): string | null {
  if (!link) return null;
  for (const part of link.split(",")) {
    const match = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
    if (match) return new URL(match[1], endpoint + "/").toString();
  }
  return null;
}

export function describeNetworkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  const causeText = cause instanceof Error ? `: ${(cause as NodeJS.ErrnoException).code ?? cause.message}` : "";
  return `${error.message}${causeText}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
