/**
 * `maskflow serve` (what `npm start` runs) on a machine without a model: its first lines name the one command
 * that gets it, and the editor's Download model button; with a model, the usual engine line.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ensureTinyModels } from "./fixtures/make-tiny-models.ts";

const repo = path.resolve(import.meta.dirname, "..");
const folders: string[] = [];
afterEach(async () => {
  await Promise.all(folders.splice(0).map((folder) => rm(folder, { recursive: true, force: true })));
});

/** Starts `maskflow serve` on a free port, reads its output until the engine lines are out, then stops it (SIGTERM). */
async function startLines(args: string[], env: Record<string, string>): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), "maskflow-serve-start-"));
  folders.push(root);
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const name of ["MASKFLOW_HOST", "MASKFLOW_PORT", "MASKFLOW_DATA_DIR", "MASKFLOW_REDIS_URL", "MASKFLOW_API_KEYS", "MASKFLOW_MODEL_DIR", "HF_ENDPOINT"]) {
    if (!(name in env)) delete childEnv[name];
  }
  const child = spawn(process.execPath, [path.join(repo, "bin/maskflow.js"), "serve", "--port", "0", "--data", path.join(root, "data"), ...args], {
    cwd: root,
    env: childEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  child.stderr.on("data", (chunk) => (stderr += chunk));
  await new Promise<void>((resolve) => {
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      // The segmind line is the last engine line.
      if (/engine segmind: /.test(stdout)) resolve();
    });
    child.on("close", () => resolve());
  });
  child.kill("SIGTERM");
  await new Promise<void>((resolve) => (child.exitCode === null ? child.on("close", () => resolve()) : resolve()));
  clearTimeout(killer);
  expect(stderr).toBe("");
  return stdout;
}

describe("npm start's first lines about the model", () => {
  it("without a model: the one command to get it, and the Download model button", async () => {
    const stdout = await startLines([], {});
    const modelDir = path.join(folders[0], "models", "sd15-inpainting");
    expect(stdout).toMatch(/^Maskflow is running at http:\/\/127\.0\.0\.1:\d+\/\n/);
    expect(stdout).toContain(`  engine local: no model at ${modelDir} yet: run \`npx maskflow models pull\`, or click Download model in the editor\n`);
  });

  it("with the engine pointed elsewhere: the command names that folder", async () => {
    const stdout = await startLines(["--model", "/nonexistent-maskflow/my-model"], {});
    expect(stdout).toContain(
      "  engine local: no model at /nonexistent-maskflow/my-model yet: run `npx maskflow models pull --models /nonexistent-maskflow --name my-model`, or click Download model in the editor\n",
    );
  });

  it("with a model: the engine line, and no pull advice", async () => {
    const { fp32 } = await ensureTinyModels();
    const stdout = await startLines(["--model", fp32], {});
    expect(stdout).toContain(`  engine local: local ONNX model at ${fp32} (device cpu)\n`);
    // The helper models (Segment Anything, LaMa) may still name their own pull; the SD model's line does not.
    expect(stdout).not.toMatch(/engine local:.*models pull/);
  });
});
