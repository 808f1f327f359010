/**
 * Every onnxruntime session of the process lives on one worker thread, so the event loop keeps serving
 * HTTP and WebSocket clients while a model loads or a UNet step runs. onnxruntime-node 1.30 does both
 * synchronously on the calling thread: on the event loop, a real-size UNet step froze the whole server for
 * 11 s and the text encoder's reopening for a second each job. Sessions share one thread (onnxruntime's own
 * intra-op threads do the parallel work), and onnxruntime-node is never loaded into two V8 isolates, which
 * its releases since 1.21 do not survive (microsoft/onnxruntime#24486).
 *
 * The thread starts on the first opening and holds the process open only while a request is in flight, so a
 * CLI run or a test file exits when its work is done. If the thread dies (out of memory, say), every request
 * in flight fails with the reason, its sessions are gone, and the next opening starts a new thread.
 */
import { Worker } from "node:worker_threads";
import type { HostReply, HostRequest, ThreadTensor, ThreadValueMetadata } from "./onnx-thread-protocol.ts";

type Pending = { resolve(reply: HostReply): void; reject(error: Error): void };

interface HostThread {
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
  /** Why the thread stopped; set once it has. */
  stopped?: string;
}

let current: HostThread | undefined;
let nextId = 1;

function hostThread(): HostThread {
  if (current && !current.stopped) return current;
  const worker = new Worker(new URL("./onnx-thread-worker.mjs", import.meta.url));
  const host: HostThread = { worker, pending: new Map() };
  worker.unref();
  worker.on("message", (reply: HostReply) => {
    const waiting = host.pending.get(reply.id);
    if (!waiting) return;
    host.pending.delete(reply.id);
    if (host.pending.size === 0) worker.unref();
    waiting.resolve(reply);
  });
  const stop = (reason: string) => {
    if (host.stopped) return;
    host.stopped = reason;
    if (current === host) current = undefined;
    for (const waiting of host.pending.values()) waiting.reject(new Error(`the onnxruntime thread stopped: ${reason}`));
    host.pending.clear();
  };
  worker.on("error", (error) => stop(error.message));
  worker.on("exit", (code) => stop(`it exited with code ${code}`));
  current = host;
  return host;
}

type RequestBody = HostRequest extends infer R ? (R extends HostRequest ? Omit<R, "id"> : never) : never;

type Answer = Extract<HostReply, { ok: true }>;

async function ask(host: HostThread, body: RequestBody): Promise<Answer> {
  if (host.stopped) throw new Error(`the onnxruntime thread stopped: ${host.stopped}; the model loads again on the next job`);
  const id = nextId++;
  const reply = await new Promise<HostReply>((resolve, reject) => {
    host.pending.set(id, { resolve, reject });
    host.worker.ref();
    // Inputs are copied, not moved: the pipeline keeps using its latents after a call.
    host.worker.postMessage({ ...body, id } as HostRequest);
  });
  if (!reply.ok) throw new Error(reply.message);
  return reply;
}

/** One session on the onnxruntime thread. */
export class ThreadSession {
  #released = false;

  private constructor(
    private readonly host: HostThread,
    private readonly handle: number,
    readonly inputMetadata: readonly ThreadValueMetadata[],
    readonly outputMetadata: readonly ThreadValueMetadata[],
  ) {}

  /** Opens a model file with onnxruntime's session options (plain data); throws onnxruntime's message. */
  static async open(file: string, options: Readonly<Record<string, unknown>>): Promise<ThreadSession> {
    const host = hostThread();
    const reply = await ask(host, { op: "open", file, options });
    if (reply.op !== "open") throw new Error(`the onnxruntime thread answered ${reply.op} to open`);
    return new ThreadSession(host, reply.handle, reply.inputs, reply.outputs);
  }

  async run(feeds: Readonly<Record<string, ThreadTensor>>, outputNames?: readonly string[]): Promise<Record<string, ThreadTensor>> {
    if (this.#released) throw new Error("the session was released");
    const reply = await ask(this.host, { op: "run", handle: this.handle, feeds, ...(outputNames ? { outputNames } : {}) });
    if (reply.op !== "run") throw new Error(`the onnxruntime thread answered ${reply.op} to run`);
    return reply.outputs;
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    // A stopped thread took its sessions with it.
    if (this.host.stopped) return;
    await ask(this.host, { op: "release", handle: this.handle });
  }
}
