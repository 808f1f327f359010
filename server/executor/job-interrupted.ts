/** The abort reason of a job the user interrupted; a node's next progress check throws it. */
export class JobInterruptedError extends Error {
  constructor() {
    super("interrupted by the user");
    this.name = "JobInterruptedError";
  }
}

export function isInterruption(error: unknown): boolean {
  return error instanceof JobInterruptedError || (error instanceof Error && error.name === "AbortError");
}
