/**
 * The second client of the abuse benchmark: GET /api/system every 20 ms from its own process, so its
 * clock runs while the server's event loop is stuck, and the slowest answer it saw is the latency an
 * innocent user had during the attack.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";

export interface PollResult {
  /** The slowest answer, in milliseconds (a request still open when polling stops counts with its age). */
  readonly worstMs: number;
  readonly answers: number;
  /** Why polling stopped early (the server went away), if it did. */
  readonly failure?: string;
}

/** Start to start; each request waits for the answer before the next. */
export const POLL_INTERVAL_MS = 20;
/** The poller stops by itself after this many requests (10 minutes at 20 ms), however it was left. */
const MAX_POLLS = 30_000;

const POLLER_SOURCE = `
  const url = process.argv[1];
  const result = { worstMs: 0, answers: 0 };
  let running = true;
  let openSince;
  const finish = () => {
    if (openSince !== undefined) result.worstMs = Math.max(result.worstMs, performance.now() - openSince);
    process.stdout.write(JSON.stringify(result) + "\\n");
    process.exit(0);
  };
  process.stdin.on("end", () => { running = false; if (openSince !== undefined) finish(); });
  process.stdin.resume();
  for (let i = 0; running && i < ${MAX_POLLS}; i++) {
    const started = performance.now();
    openSince = started;
    try {
      await (await fetch(url)).arrayBuffer();
    } catch (error) {
      result.failure = error.message;
      break;
    }
    openSince = undefined;
    // The first answer pays for the poller's own start (a new connection, compiling fetch): not the server's delay.
    if (result.answers > 0) result.worstMs = Math.max(result.worstMs, performance.now() - started);
    if (result.answers++ === 0) process.stdout.write("ready\\n");
    const left = ${POLL_INTERVAL_MS} - (performance.now() - started);
    if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
  }
  finish();
`;

/** Starts polling `${serverUrl}/api/system`; resolves once the first answer came. */
export async function startSystemPoller(serverUrl: string): Promise<{ stop(): Promise<PollResult> }> {
  const child = spawn(process.execPath, ["--input-type=module", "-e", POLLER_SOURCE, `${serverUrl}/api/system`], { stdio: ["pipe", "pipe", "inherit"] });
  let output = "";
  let markReady = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
    if (output.includes("\n")) markReady();
  });
  const exited = once(child, "exit");
  await Promise.race([ready, exited]);
  return {
    async stop() {
      child.stdin.end();
      await exited;
      const last = output.trim().split("\n").at(-1) ?? "";
      return last.startsWith("{") ? (JSON.parse(last) as PollResult) : { worstMs: Number.NaN, answers: 0, failure: "the poller said nothing" };
    },
  };
}
