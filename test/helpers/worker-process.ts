import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface WorkerProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Every line it printed (stdout and stderr). */
  readonly lines: string[];
  /** Waits (bounded) for a printed line that matches. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Ids of the jobs it reported as started / finished, in order. */
  started(): string[];
  finished(): string[];
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** A real `maskflow worker` child process (workerCommand in its own node), ready once it says so. */
export async function spawnWorker(name: string, args: readonly string[]): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, "bin/maskflow.js"), "worker", "--name", name, ...args], {
    cwd: PROJECT_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, MASKFLOW_REDIS_URL: "" },
  });
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let partial = "";
  const onData = (chunk: Buffer) => {
    const text = partial + chunk.toString("utf8");
    const parts = text.split("\n");
    partial = parts.pop() ?? "";
    lines.push(...parts);
    for (const wake of waiters) wake();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  child.once("exit", () => {
    for (const wake of waiters) wake();
  });

  const waitForLine = async (pattern: RegExp, timeoutMs = 20_000): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = lines.find((line) => pattern.test(line));
      if (found) return found;
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`worker ${name} exited (${child.exitCode ?? child.signalCode}) before printing ${pattern}:\n${lines.join("\n")}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`worker ${name} did not print ${pattern} within ${timeoutMs} ms:\n${lines.join("\n")}`);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, left);
        waiters.add(done);
      });
    }
  };
  const jobIds = (pattern: RegExp) => lines.flatMap((line) => pattern.exec(line)?.[1] ?? []);

  const worker: WorkerProcess = {
    name,
    child,
    lines,
    waitForLine,
    started: () => jobIds(/job (\S+) started/),
    finished: () => jobIds(/job (\S+) finished/),
    async kill(signal = "SIGKILL") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill(signal);
      await exited;
    },
  };
  await waitForLine(/: ready: /, 30_000).catch(async (error: unknown) => {
    await worker.kill();
    throw error;
  });
  return worker;
}
