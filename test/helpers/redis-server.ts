import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, Socket } from "node:net";
import os from "node:os";
import path from "node:path";

export const REDIS_SERVER_BINARY = process.env.MASKFLOW_TEST_REDIS_SERVER ?? "/usr/bin/redis-server";

/** A free loopback port, found by binding port 0 and letting it go. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
    socket.connect(port, "127.0.0.1");
  });
}

export interface TestRedis {
  readonly port: number;
  readonly url: string;
  /** Kills redis (SIGKILL when `crash`, else a clean SIGTERM) and waits for the port to close. */
  stop(options?: { crash?: boolean }): Promise<void>;
  /** Starts it again on the same port (and, with persistence, from the same append-only file). */
  start(): Promise<void>;
  restart(): Promise<void>;
  /** Stops it for good and removes its folder. */
  dispose(): Promise<void>;
}

/**
 * A throwaway redis-server on 127.0.0.1 and a free port. Without `persistent` it keeps nothing on disk;
 * with it, every write goes to an append-only file in a temp folder, so a restart keeps the queue.
 */
export async function startTestRedis(options: { persistent?: boolean } = {}): Promise<TestRedis> {
  if (!existsSync(REDIS_SERVER_BINARY)) {
    throw new Error(
      `${REDIS_SERVER_BINARY} is missing: the Redis queue tests need a real redis-server. ` +
        "Install it (apt-get install redis-server; `.ci/run` installs it) or set MASKFLOW_TEST_REDIS_SERVER.",
    );
  }
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-redis-"));
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir, "--protected-mode", "yes"];
  args.push(...(options.persistent ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"]));
  let child: ChildProcess | undefined;
  let output = "";

  const start = async () => {
    output = "";
    const started = spawn(REDIS_SERVER_BINARY, args, { stdio: ["ignore", "pipe", "pipe"] });
    child = started;
    started.stdout?.on("data", (chunk: Buffer) => void (output = (output + chunk.toString()).slice(-4000)));
    started.stderr?.on("data", (chunk: Buffer) => void (output = (output + chunk.toString()).slice(-4000)));
    for (let attempt = 0; attempt < 200; attempt++) {
      if (started.exitCode !== null) throw new Error(`redis-server exited with ${started.exitCode}:\n${output}`);
      if (await canConnect(port)) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    started.kill("SIGKILL");
    throw new Error(`redis-server did not listen on ${port} within 5 s:\n${output}`);
  };

  const stop = async ({ crash = false } = {}) => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once("exit", resolve));
    running.kill(crash ? "SIGKILL" : "SIGTERM");
    await exited;
  };

  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    async restart() {
      await stop();
      await start();
    },
    async dispose() {
      await stop({ crash: true });
      await rm(dir, { recursive: true, force: true });
    },
  };
}
