/**
 * The pool of worker threads that does the server's CPU-bound picture work, so the event loop keeps
 * answering HTTP and WebSocket clients while a fill, a mask filter or a PNG with a big workflow is made.
 *
 * One pool per process, created on first use. Nodes reach it directly instead of through NodeContext:
 * a node run in a test with a plain context uses the same real workers, no context has to carry it to
 * helpers below the nodes, and the executor stays as it is (an interrupt reaches the pool through
 * ctx.signal). Idle workers hold nothing open, so a CLI run or a test file exits without closing the pool.
 */
import os from "node:os";
import { fileURLToPath } from "node:url";
import { Piscina } from "piscina";
import type { ComputeInput, ComputeOutput, ComputeRequest, ComputeTaskName } from "./compute-tasks.ts";
import { shareLargeArrays } from "./shared-input.ts";

/** More threads than this only compete with sharp's and onnxruntime's own threads. */
const MAX_WORKERS = 4;
/** A worker takes about 300 ms to start (tsx included); one kept a while serves the next node of a job. */
const IDLE_TIMEOUT_MS = 30_000;

let pool: Piscina<ComputeRequest, unknown> | undefined;

function computePool(): Piscina<ComputeRequest, unknown> {
  pool ??= new Piscina<ComputeRequest, unknown>({
    filename: fileURLToPath(new URL("./compute-worker.mjs", import.meta.url)),
    minThreads: 0,
    maxThreads: Math.max(1, Math.min(MAX_WORKERS, os.availableParallelism())),
    idleTimeout: IDLE_TIMEOUT_MS,
  });
  return pool;
}

/**
 * Runs a task from compute-tasks.ts on a worker thread. The input is copied (it may be a cached node
 * output still in use; large arrays a slice at a time, see shared-input.ts), the result is moved back. An abort stops the worker at once (piscina ends the
 * thread) and rejects with the signal's reason, so the executor sees the job's own interruption.
 */
export async function runCompute<Name extends ComputeTaskName>(
  task: Name,
  input: ComputeInput<Name>,
  signal?: AbortSignal,
): Promise<ComputeOutput<Name>> {
  signal?.throwIfAborted();
  const shared = await shareLargeArrays(input);
  signal?.throwIfAborted();
  try {
    return (await computePool().run({ task, input: shared }, signal ? { signal } : {})) as ComputeOutput<Name>;
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    throw error;
  }
}
