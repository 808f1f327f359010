/**
 * What the checkpoint browser tests run against: a real server on 127.0.0.1 with the client built fresh with vite,
 * whose local engine reads a models folder made here, holding the tiny SD 1.5 inpainting checkpoint
 * (test/fixtures/make-tiny-checkpoint.ts) as checkpoints/tiny.safetensors and whatever else a test puts there, and the
 * browser to open the editor in.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser } from "playwright-core";
import { build } from "vite";
import { OnnxEngine } from "../../server/engines/onnx/onnx-engine.ts";
import type { RunningServer } from "../../server/maskflow-server.ts";
import { ensureTinyCheckpoints } from "../fixtures/make-tiny-checkpoint.ts";
import { startTestServer } from "../helpers/test-server.ts";
import { launchBrowser } from "./editor-page.ts";

/** Where the browser tests keep their screenshots. */
export const SCREENSHOTS = path.resolve("test-results/screenshots");

/** workflows/inpaint.json, as far as the tests read it. */
export interface ShippedWorkflow {
  nodes: Array<{ id: string; inputs: Record<string, unknown> }>;
}

export interface CheckpointEditor {
  readonly server: RunningServer;
  readonly engine: OnnxEngine;
  readonly browser: Browser;
  readonly modelsDir: string;
  /** workflows/inpaint.json as shipped. */
  readonly shippedInpaint: ShippedWorkflow;
  /** Closes the browser, the server and the engine, and removes the temporary folders. */
  close(): Promise<void>;
}

export interface CheckpointEditorOptions {
  /** Puts more into the models folder (its checkpoints/ made already); runs while the client builds. */
  readonly fill?: (modelsDir: string) => Promise<void>;
  /** The model folder under the models folder that the engine runs when Inpaint names no model; default none. */
  readonly defaultModel?: string;
}

/** Builds the client, fills the models folder, starts the server and launches the browser. */
export async function startCheckpointEditor(options: CheckpointEditorOptions = {}): Promise<CheckpointEditor> {
  const temporary: string[] = [];
  let server: RunningServer | undefined;
  let engine: OnnxEngine | undefined;
  let browser: Browser | undefined;
  const close = async () => {
    await browser?.close();
    await server?.close();
    await engine?.release();
    await Promise.all(temporary.map((dir) => rm(dir, { recursive: true, force: true })));
  };
  try {
    const clientDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-client-"));
    temporary.push(clientDir);
    const dataDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-data-"));
    temporary.push(dataDir);
    const modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-models-"));
    temporary.push(modelsDir);
    await mkdir(path.join(modelsDir, "checkpoints"));
    await Promise.all([
      // A real (tiny) SD 1.5 inpainting checkpoint that builds in about a second.
      ensureTinyCheckpoints().then((checkpoints) => copyFile(checkpoints.singleFile, path.join(modelsDir, "checkpoints", "tiny.safetensors"))),
      build({ root: "client", logLevel: "silent", build: { outDir: clientDir, emptyOutDir: true, sourcemap: false } }),
      options.fill?.(modelsDir),
    ]);
    engine = new OnnxEngine({
      modelsDir,
      defaultModelDir: options.defaultModel === undefined ? undefined : path.join(modelsDir, options.defaultModel),
      threads: 1,
    });
    server = await startTestServer({ clientDir, dataDir, engines: { local: engine } });
    const shippedInpaint = JSON.parse(await readFile(path.resolve("workflows/inpaint.json"), "utf8")) as ShippedWorkflow;
    browser = await launchBrowser();
    await mkdir(SCREENSHOTS, { recursive: true });
    return { server, engine, browser, modelsDir, shippedInpaint, close };
  } catch (error) {
    await close();
    throw error;
  }
}
