/**
 * The data folder as a worker sees it: while a job runs, every image a node writes is named after the
 * job, `<jobId>_<prefix>_<n>.<ext>` (n counts the job's own writes into that folder from 1), so a job that is run again
 * after its worker died overwrites its first attempt's files instead of adding more. Several jobs may
 * run at once in one worker (--concurrency): which job is writing is read from the async context the
 * worker opened for it, so nodes and the executor need not know.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { ImageRef } from "../../nodes/node-definition.ts";
import { DataFolders } from "../storage/data-folders.ts";

interface JobNaming {
  readonly jobId: string;
  /** Per folder, so previews in temp/ do not shift the numbers of the saved outputs. */
  readonly written: { output: number; temp: number };
}

export class JobOutputFolders extends DataFolders {
  readonly #currentJob = new AsyncLocalStorage<JobNaming>();

  /** Runs `work` with this job's names for every image written inside it. */
  runAs<T>(jobId: string, work: () => Promise<T>): Promise<T> {
    return this.#currentJob.run({ jobId, written: { output: 0, temp: 0 } }, work);
  }

  override async writeImage(
    bytes: Uint8Array,
    options: { prefix: string; extension: string; type: "output" | "temp" },
  ): Promise<ImageRef> {
    const job = this.#currentJob.getStore();
    if (!job) return super.writeImage(bytes, options);
    const prefix = options.prefix.replace(/[^A-Za-z0-9_-]+/g, "_").slice(0, 64) || "maskflow";
    const jobPart = job.jobId.replace(/[^A-Za-z0-9_-]+/g, "_");
    const extension = options.extension.replace(/[^A-Za-z0-9]+/g, "") || "bin";
    const filename = `${jobPart}_${prefix}_${String(++job.written[options.type]).padStart(2, "0")}.${extension}`;
    return this.writeNamed(options.type, filename, bytes);
  }
}
