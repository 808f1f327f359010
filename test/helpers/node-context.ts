import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { ImageRef, NodeContext, ProgressUpdate } from "../../nodes/node-definition.ts";
import { DataFolders } from "../../server/storage/data-folders.ts";

export interface TestContext extends NodeContext {
  readonly folders: DataFolders;
  readonly shown: ImageRef[];
  readonly progressUpdates: ProgressUpdate[];
  readonly reported: Record<string, string | number | boolean>;
  readonly abort: AbortController;
}

/** A real NodeContext over a fresh data folder in the system temp dir, recording what the node reports. */
export async function createTestContext(options: { workflow?: unknown; engines?: Record<string, unknown> } = {}): Promise<TestContext> {
  const folders = await new DataFolders(await mkdtemp(path.join(os.tmpdir(), "maskflow-test-"))).create();
  const shown: ImageRef[] = [];
  const progressUpdates: ProgressUpdate[] = [];
  const reported: Record<string, string | number | boolean> = {};
  const abort = new AbortController();
  return {
    nodeId: "1",
    jobId: "test-job",
    signal: abort.signal,
    abort,
    folders,
    shown,
    progressUpdates,
    reported,
    progress(update) {
      abort.signal.throwIfAborted();
      progressUpdates.push(update);
    },
    show(images) {
      shown.push(...images);
    },
    report(values) {
      Object.assign(reported, values);
    },
    storage: folders,
    logger: { info() {}, warn() {} },
    engines: options.engines ?? {},
    workflow: options.workflow ?? { format: "maskflow-workflow", version: 1, nodes: [] },
  };
}
