/**
 * The `/ws?clientId=` endpoint: JSON events `{type, data}` with ComfyUI's names, plus binary preview
 * frames. A job's events go to the client that queued it (to everyone when it gave no clientId);
 * queue status goes to everyone. A client that (re)connects is sent the current status at once.
 */
import { consoleLog, describeFailure, type ServerLog } from "../logging/server-log.ts";
import { randomUUID } from "node:crypto";
import type { Server } from "node:http";
import { WebSocket, WebSocketServer } from "ws";
import type { JobQueuePort, JobRef, QueueEvent } from "../queue/job-queue-port.ts";
import type { ApiKeys } from "./api-keys.ts";
import type { OriginPolicy } from "./origin-guard.ts";
import { encodePreviewFrame } from "./preview-frame.ts";

export class WebSocketHub {
  readonly #server: WebSocketServer;
  readonly #clients = new Map<WebSocket, string>();
  readonly #unsubscribe: () => void;
  // One chain for all sends keeps frames in event order even while a preview is being JPEG-encoded.
  #sending: Promise<void> = Promise.resolve();

  constructor(
    httpServer: Server,
    readonly queue: JobQueuePort,
    access: { readonly keys: ApiKeys; readonly origins: OriginPolicy },
    private readonly log: ServerLog = consoleLog,
  ) {
    this.#server = new WebSocketServer({
      server: httpServer,
      path: "/ws",
      maxPayload: 64 * 1024,
      // Browsers send Origin on every upgrade and WebSockets have no same-origin rule of their own: without
      // this, any page the user visits could watch the jobs and previews.
      verifyClient: ({ req }, done) => {
        const refused = access.origins.problem(req.headers);
        if (refused) return done(false, refused.status, refused.code);
        const check = access.keys.check(req);
        if (!check.ok) return done(false, check.problem.status, check.problem.code);
        done(true);
      },
    });
    // ws repeats the HTTP server's errors here; a failed listen (a busy port) is already the listener's to
    // report, and an 'error' event nobody handles would end the process with a stack trace instead.
    this.#server.on("error", () => {});
    this.#server.on("connection", (socket, request) => {
      const url = new URL(request.url ?? "/ws", "http://localhost");
      const clientId = url.searchParams.get("clientId") || randomUUID();
      this.#clients.set(socket, clientId);
      socket.on("close", () => this.#clients.delete(socket));
      socket.on("error", () => this.#clients.delete(socket));
      socket.send(JSON.stringify({ type: "status", data: { status: queue.status(), sid: clientId } }));
    });
    this.#unsubscribe = queue.subscribe((event, job) => this.#publish(event, job));
  }

  get clientCount(): number {
    return this.#clients.size;
  }

  #targets(job: JobRef | undefined): WebSocket[] {
    const sockets = [...this.#clients.keys()].filter((socket) => socket.readyState === WebSocket.OPEN);
    if (!job?.clientId) return sockets;
    return sockets.filter((socket) => this.#clients.get(socket) === job.clientId);
  }

  #publish(event: QueueEvent, job: JobRef | undefined): void {
    const targets = this.#targets(event.type === "status" ? undefined : job);
    if (!targets.length) return;
    let frame: Promise<string | Buffer>;
    if (event.type === "preview") {
      frame = encodePreviewFrame(event.node, event.image);
    } else if (event.type === "preview_frame") {
      // Framed by the worker that ran the node (Redis mode): the same bytes an embedded preview gets.
      frame = Promise.resolve(Buffer.from(event.frame.buffer, event.frame.byteOffset, event.frame.byteLength));
    } else {
      const { type, ...data } = event;
      frame = Promise.resolve(JSON.stringify({ type, data }));
    }
    this.#sending = this.#sending
      .then(() => frame)
      .then((payload) => {
        for (const socket of targets) if (socket.readyState === WebSocket.OPEN) socket.send(payload);
      })
      .catch((error: unknown) => this.log.error(`websocket send failed: ${describeFailure(error)}`));
  }

  async close(): Promise<void> {
    this.#unsubscribe();
    for (const socket of this.#clients.keys()) socket.terminate();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
