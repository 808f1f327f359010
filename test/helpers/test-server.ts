import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { NodeRegistry } from "../../nodes/registry.ts";
import { type RunningServer, type ServerOptions, startServer } from "../../server/maskflow-server.ts";
import { RecordingLog } from "./recording-log.ts";

export type TestServer = RunningServer & { readonly log: RecordingLog };

/** A real Maskflow server on 127.0.0.1, a free port and a fresh data folder; its lines are kept in `log`, not printed. */
export async function startTestServer(options: Partial<ServerOptions> & { registry?: NodeRegistry } = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), "maskflow-server-")));
  const log = new RecordingLog();
  const server = await startServer({ host: "127.0.0.1", port: 0, log, ...options, dataDir });
  return Object.assign(server, { log });
}

/** JSON request against the server; returns status, headers and the parsed body. */
export async function api(server: { url: string }, method: string, route: string, body?: unknown) {
  const response = await fetch(server.url + route, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: response.status, headers: response.headers, body: json as any };
}
