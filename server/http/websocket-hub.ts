/**
 * The `/ws?clientId=` endpoint: JSON events `{type, data}` with ComfyUI's names, plus binary preview
 * frames. A job's events go to the client that queued it (to everyone when it gave no clientId);
 * queue status goes to everyone. A client that (re)connects is sent the current status at once.
 *
 * A client that does not read must not make the server hold what it does not read. Previews are
 * latest-only: while a client has more than PREVIEW_BACKLOG_BYTES unsent, a new preview replaces the one
 * waiting for it instead of queueing behind it. JSON events are never dropped, so a client whose unsent
 * bytes would pass MAX_BACKLOG_BYTES is closed (1013, "try again later") and may reconnect; it is sent
 * the current status when it does.
 */
import { consoleLog, describeFailure, type ServerLog } from "../logging/server-log.ts";
import { randomUUID } from "node:crypto";
import type { Server } from "node:http";
import { WebSocket, WebSocketServer } from "ws";
import type { JobQueuePort, JobRef, QueueEvent } from "../queue/job-queue-port.ts";
import type { ApiKeys } from "./api-keys.ts";
import type { OriginPolicy } from "./origin-guard.ts";
import { encodePreviewFrame } from "./preview-frame.ts";

/** Unsent bytes above which a client gets only the newest preview, once it has caught up. */
export const PREVIEW_BACKLOG_BYTES = 256 * 1024;
/** Unsent bytes a client may have at most; the event that would pass this closes it instead. */
export const MAX_BACKLOG_BYTES = 8 * 1024 * 1024;
/** WebSocket close code 1013: "try again later". */
export const BACKLOG_CLOSE_CODE = 1013;
/** A closed client that does not answer the close (it reads nothing) is cut off after this. */
const CLOSE_GRACE_MS = 1000;

interface Client {
  readonly clientId: string;
  /** The newest preview not yet sent, held while the client is behind; a newer one replaces it. */
  waitingPreview?: Buffer;
}

export class WebSocketHub {
  readonly #server: WebSocketServer;
  readonly #clients = new Map<WebSocket, Client>();
  /** Closed for falling behind and not yet gone: cut off at shutdown like the rest. */
  readonly #closing = new Set<WebSocket>();
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
      this.#clients.set(socket, { clientId });
      socket.on("close", () => this.#clients.delete(socket));
      socket.on("error", () => this.#clients.delete(socket));
      this.#deliver(socket, JSON.stringify({ type: "status", data: { status: queue.status(), sid: clientId } }), false);
    });
    this.#unsubscribe = queue.subscribe((event, job) => this.#publish(event, job));
  }

  get clientCount(): number {
    return this.#clients.size;
  }

  /** A server-wide JSON event `{type, data}` to every client (the model pull's progress), in order with the rest. */
  broadcast(type: string, data: unknown): void {
    const payload = JSON.stringify({ type, data });
    this.#sending = this.#sending
      .then(() => {
        for (const socket of this.#targets(undefined)) this.#deliver(socket, payload, false);
      })
      .catch((error: unknown) => this.log.error(`websocket send failed: ${describeFailure(error)}`));
  }

  #targets(job: JobRef | undefined): WebSocket[] {
    const sockets = [...this.#clients.keys()].filter((socket) => socket.readyState === WebSocket.OPEN);
    if (!job?.clientId) return sockets;
    return sockets.filter((socket) => this.#clients.get(socket)?.clientId === job.clientId);
  }

  #publish(event: QueueEvent, job: JobRef | undefined): void {
    const targets = this.#targets(event.type === "status" ? undefined : job);
    if (!targets.length) return;
    let frame: Promise<string | Buffer>;
    const preview = event.type === "preview" || event.type === "preview_frame";
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
        for (const socket of targets) this.#deliver(socket, payload, preview);
      })
      .catch((error: unknown) => this.log.error(`websocket send failed: ${describeFailure(error)}`));
  }

  /** Sends one frame to one client, within its backlog limits (see the top of this file). */
  #deliver(socket: WebSocket, payload: string | Buffer, preview: boolean): void {
    const client = this.#clients.get(socket);
    if (!client || socket.readyState !== WebSocket.OPEN) return;
    if (preview) {
      if (socket.bufferedAmount > PREVIEW_BACKLOG_BYTES) {
        client.waitingPreview = payload as Buffer;
        return;
      }
      this.#send(socket, client, payload);
      return;
    }
    // An event never overtakes an older preview: the waiting one goes first if there is room, else it is dropped.
    const waiting = client.waitingPreview;
    client.waitingPreview = undefined;
    if (waiting && socket.bufferedAmount <= PREVIEW_BACKLOG_BYTES) this.#send(socket, client, waiting);
    const size = typeof payload === "string" ? Buffer.byteLength(payload) : payload.length;
    if (socket.bufferedAmount + size > MAX_BACKLOG_BYTES) {
      this.#closeBehind(socket, socket.bufferedAmount + size);
      return;
    }
    this.#send(socket, client, payload);
  }

  #send(socket: WebSocket, client: Client, payload: string | Buffer): void {
    // Called once the frame has left this process: the moment to send the preview that waited for room.
    socket.send(payload, (error) => {
      if (error || !client.waitingPreview || socket.readyState !== WebSocket.OPEN) return;
      if (socket.bufferedAmount > PREVIEW_BACKLOG_BYTES) return;
      const waiting = client.waitingPreview;
      client.waitingPreview = undefined;
      this.#send(socket, client, waiting);
    });
  }

  /** Closes a client that has fallen too far behind; it may reconnect and gets the current status then. */
  #closeBehind(socket: WebSocket, backlog: number): void {
    const client = this.#clients.get(socket);
    this.#clients.delete(socket);
    const megabytes = (MAX_BACKLOG_BYTES / (1024 * 1024)).toFixed(0);
    this.log.warn(`closing WebSocket client "${client?.clientId}": ${backlog} bytes unread, more than the ${megabytes} MB limit`);
    this.#closing.add(socket);
    socket.once("close", () => this.#closing.delete(socket));
    socket.close(BACKLOG_CLOSE_CODE, `too far behind: more than ${megabytes} MB unread; reconnect`);
    // It reads nothing, so it will not answer the close either: what it has not read is freed soon, not in 30 s.
    setTimeout(() => socket.terminate(), CLOSE_GRACE_MS).unref();
  }

  async close(): Promise<void> {
    this.#unsubscribe();
    for (const socket of [...this.#clients.keys(), ...this.#closing]) socket.terminate();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
