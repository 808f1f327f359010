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
