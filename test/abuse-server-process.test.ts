// The abuse bench's server process (bench/abuse-server.ts through bench/abuse-server-process.ts): it serves
// HTTP and WebSocket on its own, measures its own event loop and memory, and never outlives the bench.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AbuseServerProcess, startAbuseServer } from "../bench/abuse-server-process.ts";
import { ensureTinyModels } from "./fixtures/make-tiny-models.ts";
import { connectClient } from "./helpers/ws-client.ts";

const repo = path.resolve(import.meta.dirname, "..");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntilGone(pid: number, limitMs: number): Promise<boolean> {
  const deadline = Date.now() + limitMs;
  while (alive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  return !alive(pid);
}

describe("abuse bench server process", () => {
  let dataDir: string;
  let server: AbuseServerProcess;

  beforeAll(async () => {
    await ensureTinyModels();
    dataDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-test-abuse-server-"));
    server = await startAbuseServer(dataDir);
  }, 180_000);

  afterAll(async () => {
    await server?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("serves the API on the loopback and reports its own RSS and empty output cache", async () => {
    expect(new URL(server.url).hostname).toBe("127.0.0.1");
    const response = await fetch(`${server.url}/api/system`);
    expect(response.status).toBe(200);
    const rss = await server.ask("rss");
    expect(rss.rssMb).toBeGreaterThan(20);
    expect(rss.outputCacheBytes).toBe(0);
    expect(await server.ask("segmind-inputs")).toEqual({ files: 0, bytes: 0 });
  });

  it("measures its own event loop: the bench's loop blocked for 2 s does not show", async () => {
    const started = await server.ask("start");
    const blockedUntil = performance.now() + 2000;
    while (performance.now() < blockedUntil) {
      // the bench's own work, on the bench's thread
    }
    const figures = await server.ask("stop");
    expect(figures.rssBeforeMb).toBe(started.rssBeforeMb);
    expect(figures.rssAfterMb).toBeGreaterThan(20);
    expect(figures.loopMaxMs).toBeGreaterThan(0);
    expect(figures.loopMaxMs).toBeLessThan(2000);
    expect(figures.loopP99Ms).toBeLessThanOrEqual(figures.loopMaxMs);
  });

  it("refuses commands out of order with a message that says what to send", async () => {
    await expect(server.ask("stop")).rejects.toThrow("stop: not measuring (send start first)");
    await expect(server.ask("socket-report")).rejects.toThrow("socket-report: no socket watched (send watch-socket first)");
    await server.ask("start");
    await expect(server.ask("start")).rejects.toThrow("start: already measuring (send stop first)");
    await server.ask("stop");
  });

  it("watches the server's end of one client's WebSocket", async () => {
    await server.ask("watch-socket", { clientId: "watched" });
    const other = await connectClient(server.url, "someone-else");
    const watched = await connectClient(server.url, "watched");
    try {
      await watched.waitFor((message) => message.type === "status");
      const report = await server.ask("socket-report");
      expect(report).toEqual({ connected: true, heldMostBytes: expect.any(Number), closedByServer: false });
    } finally {
      other.socket.terminate();
      watched.socket.terminate();
    }
  });
});

describe("abuse bench server process lifetime", () => {
  it("ends when the bench that started it is killed", async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-test-abuse-orphan-"));
    let bench: ChildProcess | undefined;
    let serverPid: number | undefined;
    try {
      // A bench that starts the server process, says its pid and waits; then it is SIGKILLed (no cleanup of its own).
      const source = `const { startAbuseServer } = await import(${JSON.stringify(path.join(repo, "bench", "abuse-server-process.ts"))});
        const server = await startAbuseServer(${JSON.stringify(dataDir)});
        process.stdout.write("server " + server.pid + "\\n");
        setTimeout(() => {}, 600000);`;
      bench = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", source], { cwd: repo, stdio: ["ignore", "pipe", "inherit"] });
      serverPid = await new Promise<number>((resolve, reject) => {
        let output = "";
        bench!.stdout!.on("data", (chunk: Buffer) => {
          output += chunk.toString("utf8");
          const match = /server (\d+)\n/.exec(output);
          if (match) resolve(Number(match[1]));
        });
        bench!.once("exit", (code) => reject(new Error(`the bench ended (code ${code}) before it said the server's pid: ${output}`)));
      });
      expect(alive(serverPid)).toBe(true);
      bench.kill("SIGKILL");
      expect(await waitUntilGone(serverPid, 20_000)).toBe(true);
    } finally {
      bench?.kill("SIGKILL");
      if (serverPid !== undefined && alive(serverPid)) process.kill(serverPid, "SIGKILL");
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 180_000);
});
