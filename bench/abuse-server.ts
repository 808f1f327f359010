/**
 * The server the abuse benchmark attacks, in a process of its own so that the figures are the server's: the
 * attacker's payloads (a 12 MB body of 1,000,000 keys, ten 6 MB bodies, pixel bombs) and its CPU work stay in
 * the bench's process. Started by abuse-server-process.ts as
 * `node --expose-gc bin/run-ts.js bench/abuse-server.ts DATA_DIR` with an IPC channel; answers the commands of
 * abuse-protocol.ts. The tiny model (test/fixtures), onnxruntime on one thread, 127.0.0.1 on a free port,
 * nothing logged. It stops when the bench goes away (the channel closes, even if the bench was killed), on
 * SIGINT and on SIGTERM.
 */
import { readdir, stat } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import path from "node:path";
import { type IntervalHistogram, monitorEventLoopDelay } from "node:perf_hooks";
import v8 from "node:v8";
import vm from "node:vm";
import { OnnxEngine } from "../server/engines/onnx/onnx-engine.ts";
import { startServer } from "../server/maskflow-server.ts";
import { ensureTinyModels } from "../test/fixtures/make-tiny-models.ts";
import { type Answer, type Command, type CommandName, commandSchema, type ServerMessage } from "./abuse-protocol.ts";

/** How often the watched socket's unsent bytes are sampled. */
const SOCKET_SAMPLE_MS = 5;

const quietLog = { info() {}, warn() {}, error() {} };

/** A full collection, with --expose-gc or without it (the flag can be set at run time and gc fetched from a fresh context). */
function fullGc(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
}

/** To the bench while it listens; once it has gone (the channel closed) there is no one to answer, and no EPIPE to die of. */
const send = (message: ServerMessage) => {
  if (process.connected) process.send?.(message, undefined, {}, () => {});
};

const dataDir = process.argv[2];
if (!dataDir || !process.send) {
  process.stderr.write("usage: node --expose-gc bin/run-ts.js bench/abuse-server.ts DATA_DIR (with an IPC channel: started by the abuse bench)\n");
  process.exit(2);
}

let measuring: { readonly delay: IntervalHistogram; readonly rssBeforeMb: number } | undefined;
let watch: SocketWatch | undefined;
/** What must be let go at the end; grows as the start-up gets further, so a stop during start-up is clean too. */
let release: () => Promise<void> = async () => {};
let stopping: Promise<never> | undefined;
function shutdown(code: number): Promise<never> {
  stopping ??= (async () => {
    watch?.end();
    measuring?.delay.disable();
    await release().catch(() => {});
    process.exit(code);
  })();
  return stopping;
}
// Registered before the slow start-up: a bench that goes away while the model is prepared still stops this process.
process.on("disconnect", () => void shutdown(0));
process.on("SIGINT", () => void shutdown(130));
process.on("SIGTERM", () => void shutdown(143));

const gc = fullGc();
const tiny = await ensureTinyModels();
const engine = new OnnxEngine({ defaultModelDir: tiny.fp32, threads: 1 });
release = () => engine.release();
const server = await startServer({
  host: "127.0.0.1",
  port: 0,
  dataDir,
  log: quietLog,
  // Nothing from the caller's environment (MASKFLOW_API_KEYS, MASKFLOW_ALLOWED_HOSTS) changes what is measured.
  apiKeys: [],
  allowedHosts: [],
  engines: { local: engine },
  releaseModels: () => engine.release(),
});
release = async () => {
  await server.close();
  await engine.release();
};

const rssMb = () => process.memoryUsage().rss / (1024 * 1024);
const outputCacheBytes = () => server.executor.cache.bytes;

/** The server's end of one client's WebSocket: what it holds unsent for that client, sampled. */
class SocketWatch {
  #socket: Socket | undefined;
  #heldMost = 0;
  readonly #sampler: NodeJS.Timeout;
  readonly #onUpgrade = (request: IncomingMessage, socket: Socket) => {
    const clientId = new URL(request.url ?? "/", "http://localhost").searchParams.get("clientId");
    if (clientId === this.clientId) this.#socket = socket;
  };

  constructor(readonly clientId: string) {
    server.httpServer.on("upgrade", this.#onUpgrade);
    this.#sampler = setInterval(() => (this.#heldMost = Math.max(this.#heldMost, this.#socket?.writableLength ?? 0)), SOCKET_SAMPLE_MS);
  }

  report(): Answer<"socket-report"> {
    return { connected: this.#socket !== undefined, heldMostBytes: this.#heldMost, closedByServer: this.#socket?.destroyed ?? false };
  }

  end(): void {
    clearInterval(this.#sampler);
    server.httpServer.off("upgrade", this.#onUpgrade);
  }
}

async function segmindInputs(): Promise<Answer<"segmind-inputs">> {
  const folder = path.join(server.folders.input, "segmind");
  const names = await readdir(folder).catch(() => [] as string[]);
  const sizes = await Promise.all(names.map(async (name) => (await stat(path.join(folder, name)).catch(() => undefined))?.size ?? 0));
  return { files: names.length, bytes: sizes.reduce((a, b) => a + b, 0) };
}

async function answer(command: Command): Promise<Answer<CommandName>> {
  switch (command.command) {
    case "start": {
      if (measuring) throw new Error("start: already measuring (send stop first)");
      gc();
      const rssBeforeMb = rssMb();
      const delay = monitorEventLoopDelay({ resolution: 5 });
      delay.enable();
      measuring = { delay, rssBeforeMb };
      return { rssBeforeMb };
    }
    case "stop": {
      if (!measuring) throw new Error("stop: not measuring (send start first)");
      const { delay, rssBeforeMb } = measuring;
      measuring = undefined;
      delay.disable();
      gc();
      return { loopP99Ms: delay.percentile(99) / 1e6, loopMaxMs: delay.max / 1e6, rssBeforeMb, rssAfterMb: rssMb(), outputCacheBytes: outputCacheBytes() };
    }
    case "rss":
      gc();
      return { rssMb: rssMb(), outputCacheBytes: outputCacheBytes() };
    case "segmind-inputs":
      return await segmindInputs();
    case "watch-socket":
      watch?.end();
      watch = new SocketWatch(command.clientId);
      return {};
    case "socket-report": {
      if (!watch) throw new Error("socket-report: no socket watched (send watch-socket first)");
      const report = watch.report();
      watch.end();
      watch = undefined;
      return report;
    }
  }
}

process.on("message", (raw: unknown) => {
  const parsed = commandSchema.safeParse(raw);
  if (!parsed.success) {
    const id = typeof raw === "object" && raw !== null && "id" in raw && typeof raw.id === "number" ? raw.id : -1;
    send({ id, ok: false, error: `not a command of abuse-protocol.ts: ${parsed.error.message}` });
    return;
  }
  answer(parsed.data).then(
    (result) => send({ id: parsed.data.id, ok: true, result }),
    (error: unknown) => send({ id: parsed.data.id, ok: false, error: error instanceof Error ? error.message : String(error) }),
  );
});

send({ ready: server.url });
