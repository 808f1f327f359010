/** A hub answer that retrying will not change; the message says what the user can do about it. */
export class HubError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.name = "HubError";
    this.status = status;
  }
}

/** A downloaded file whose bytes are not the ones the hub announced; the file is deleted. */
export class FileVerificationError extends Error {
  readonly filePath: string;

  constructor(filePath: string, message: string) {
    super(message);
    this.name = "FileVerificationError";
    this.filePath = filePath;
  }
}

/** Explains an HTTP error status in terms of what to do; `what` names the repository, revision or file asked for. */
export function hubErrorFor(status: number, what: string, errorCode: string | null): HubError {
  if (status === 401 || status === 403) {
    const gated = errorCode === "GatedRepo" || status === 403;
    return new HubError(
      status,
      gated
        ? `${what}: access denied (HTTP ${status}). The repository may be gated: accept its licence on the hub page, and set HF_TOKEN to a token of that account.`
        : `${what}: HTTP ${status}, authentication needed. The repository is private, gated or does not exist; set HF_TOKEN to a Hugging Face access token that can read it.`,
    );
  }
  if (status === 404) {
    const kind = errorCode === "RevisionNotFound" ? "revision" : errorCode === "EntryNotFound" ? "file" : "repository or revision";
    return new HubError(status, `${what}: ${kind} not found (HTTP 404). Check the repository id and --revision.`);
  }
  return new HubError(status, `${what}: HTTP ${status}`);
}

/**
 * The hub could not be contacted at all (its name does not resolve, nothing listens, no route). Retrying
 * changes nothing in the seconds a backoff waits, so the user hears it at once, with what to check.
 */
export class HubUnreachableError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = "HubUnreachableError";
    this.code = code;
  }
}

/**
 * Why a connection could not be made, when it is one of the failures that say "the hub cannot be reached":
 * `definitive` ones (the name does not exist, the port is closed) are never retried; the others (no DNS server
 * answered, no route) are retried only once the hub has answered in this run, since before that they mean
 * this machine is offline, and after it they are a blip in a long download.
 */
export function connectionFailure(error: unknown): { code: string; detail: string; definitive: boolean } | undefined {
  const cause = error instanceof Error ? (error as { cause?: unknown }).cause : undefined;
  if (!(cause instanceof Error)) return undefined;
  const errno = cause as NodeJS.ErrnoException & { hostname?: string; address?: string; port?: number };
  const host = errno.hostname ?? "the hub's host";
  const address = errno.address ? `${errno.address}${errno.port ? `:${errno.port}` : ""}` : "the hub";
  switch (errno.code) {
    case "ENOTFOUND":
      return { code: errno.code, detail: `DNS lookup failed for ${host}`, definitive: true };
    case "ECONNREFUSED":
      return { code: errno.code, detail: `connection refused by ${address}`, definitive: true };
    case "EAI_AGAIN":
      return { code: errno.code, detail: `DNS lookup for ${host} got no answer`, definitive: false };
    case "ENETUNREACH":
    case "EHOSTUNREACH":
      return { code: errno.code, detail: `no network route to ${address}`, definitive: false };
    default:
      return undefined;
  }
}

/** "cannot reach the model hub at URL (why): what to do"; HF_ENDPOINT is named whether it is set (to check it) or not (to try a mirror). */
export function unreachableError(endpoint: string, endpointIsCustom: boolean, failure: { code: string; detail: string }): HubUnreachableError {
  const advice = endpointIsCustom
    ? `check the network, and HF_ENDPOINT (set to ${endpoint})`
    : "check the network, or set HF_ENDPOINT to a mirror";
  return new HubUnreachableError(failure.code, `cannot reach the model hub at ${endpoint} (${failure.detail}): ${advice}`);
}
