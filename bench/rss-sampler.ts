/**
 * The process's peak RSS per phase of a benchmark, sampled every 20 ms on a worker thread: onnxruntime-node
 * runs a session on the main thread, so a timer there would only fire between runs and miss their peaks.
 */
import { Worker } from "node:worker_threads";

const SAMPLER_SOURCE = `
const { workerData } = require("node:worker_threads");
const phase = new Int32Array(workerData, 0, 1);
const peaks = new Float64Array(workerData, 8);
setInterval(() => {
  const p = Atomics.load(phase, 0);
  if (p < 0) process.exit(0);
  const rss = process.memoryUsage.rss();
  if (rss > peaks[p]) peaks[p] = rss;
}, 20);
`;

export class RssSampler<Phase extends string> {
  readonly #phases: readonly Phase[];
  readonly #phase: Int32Array;
  readonly #peaks: Float64Array;
  readonly #worker: Worker;

  constructor(phases: readonly Phase[]) {
    this.#phases = phases;
    const shared = new SharedArrayBuffer(8 + 8 * phases.length);
    this.#phase = new Int32Array(shared, 0, 1);
    this.#peaks = new Float64Array(shared, 8);
    this.#worker = new Worker(SAMPLER_SOURCE, { eval: true, workerData: shared });
    this.#worker.unref();
  }

  enter(phase: Phase): void {
    Atomics.store(this.#phase, 0, this.#phases.indexOf(phase));
  }

  peaks(): Record<Phase, number> {
    return Object.fromEntries(this.#phases.map((p, i) => [p, this.#peaks[i]])) as Record<Phase, number>;
  }

  async stop(): Promise<void> {
    Atomics.store(this.#phase, 0, -1);
    await this.#worker.terminate();
  }
}
