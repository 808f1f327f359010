import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";

const repo = path.resolve(import.meta.dirname, "..");

/** `maskflow serve …` as a user starts it: a real process, killed if it is still up after 60 s. */
async function serve(args: string[], dataDir?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const data = dataDir ?? path.join(await mkdtemp(path.join(os.tmpdir(), "maskflow-serve-")), "data");
  const env = { ...process.env };
  for (const name of ["MASKFLOW_HOST", "MASKFLOW_PORT", "MASKFLOW_DATA_DIR", "MASKFLOW_REDIS_URL", "MASKFLOW_API_KEYS"]) delete env[name];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repo, "bin/maskflow.js"), "serve", "--data", data, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("maskflow serve when it cannot listen", () => {
  it("a busy port: one line that says what to do, exit 1, no stack trace", async () => {
    const other = net.createServer();
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    const { port } = other.address() as net.AddressInfo;
    try {
      const result = await serve(["--port", String(port)]);
      expect(result.stderr).toBe(`maskflow serve: port ${port} on 127.0.0.1 is in use: stop the other server or pass --port N\n`);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe("");
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });

  it("a busy port leaves the running server's previews alone (temp/ is swept only once the port is ours)", async () => {
    const data = await mkdtemp(path.join(os.tmpdir(), "maskflow-serve-busy-"));
    await mkdir(path.join(data, "temp"), { recursive: true });
    await writeFile(path.join(data, "temp", "preview_00001.png"), "a preview the running server shows");
    const other = net.createServer();
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    const { port } = other.address() as net.AddressInfo;
    try {
      expect((await serve(["--port", String(port)], data)).code).toBe(1);
      expect(await readdir(path.join(data, "temp"))).toEqual(["preview_00001.png"]);
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });

  it("a host that is not this machine's (192.0.2.1, an address reserved for documentation): the same kind of line", async () => {
    // The bind fails at once in the kernel: nothing is sent anywhere.
    const result = await serve(["--host", "192.0.2.1", "--allow-remote-without-key", "--port", "0"]);
    expect(result.stderr).toBe(
      "maskflow serve: cannot listen on 192.0.2.1: it is not an address of this machine; pass --host 127.0.0.1, 0.0.0.0 or one of its addresses\n",
    );
    expect(result.code).toBe(1);
  });
});
