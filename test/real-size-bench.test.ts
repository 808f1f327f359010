// The real-size benchmark run as a user runs it (node bin/run-ts.js bench/index.ts real-size …) on the
// tiny model: every figure is there and of the right kind. Its values are the bench's business, not a test's.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { ensureTinyModels } from "./fixtures/make-tiny-models.ts";

const repo = path.resolve(import.meta.dirname, "..");
const run = promisify(execFile);

function bench(args: string[]) {
  return run(process.execPath, ["bin/run-ts.js", "bench/index.ts", "real-size", ...args], { cwd: repo, timeout: 120_000 });
}

describe("bench real-size", () => {
  it("prints one JSON object with load, step, VAE, memory and GFLOPS figures for the tiny model", async () => {
    const { fp32 } = await ensureTinyModels();
    const { stdout } = await bench(["--model", fp32, "--steps", "3", "--size", "128", "--json"]);
    const report: Record<string, unknown> = JSON.parse(stdout);
    for (const key of [
      "loadSeconds",
      "loadSeconds.text_encoder",
      "loadSeconds.unet",
      "loadSeconds.vae_encoder",
      "loadSeconds.vae_decoder",
      "warmUpSeconds",
      "firstStepSeconds",
      "stepSeconds",
      "vaeEncodeSeconds",
      "vaeDecodeSeconds",
      "peakRssBytes",
      "idleRssBytes",
      "unetGflops",
      "cpuPeakGflops",
    ]) {
      expect(typeof report[key], key).toBe("number");
      expect(report[key] as number, key).toBeGreaterThanOrEqual(0);
    }
    expect(report.peakRssBytes as number).toBeGreaterThanOrEqual(report.idleRssBytes as number);
    expect(report.unetMultiplyAddsPerCall as number).toBeGreaterThan(0);
    expect(report.unetUncountedNodes).toBe(0);
    expect(report.size).toBe("128x128, 3 DDIM steps, guidance 7.5, 1 sample, float32");
  });

  it("names the flag and the allowed values when one is wrong", async () => {
    const { fp32 } = await ensureTinyModels();
    const failure = await bench(["--model", fp32, "--arena", "maybe"]).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure?.code).not.toBe(0);
    expect(failure?.stderr).toContain('real-size: --arena must be on or off; got "maybe"');
    const device = await bench(["--model", fp32, "--device", "gpu"]).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(device?.stderr).toContain('real-size: --device must be "cpu" or "cuda", got "gpu"');
  });
});

/** scripts/real-size/gpu-bench.sh as a user runs it; this machine has no GPU, so its CUDA parts fail by design. */
function gpuBench(args: string[]) {
  return run("bash", ["scripts/real-size/gpu-bench.sh", ...args], { cwd: repo, timeout: 120_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
}

describe("scripts/real-size/gpu-bench.sh", () => {
  it("stops with status 3 and the install command when onnxruntime-node has no CUDA provider", async () => {
    const { fp32 } = await ensureTinyModels();
    const check = await run(process.execPath, ["bin/run-ts.js", "scripts/real-size/check-cuda-provider.ts", "--json"], { cwd: repo }).then(
      ({ stdout }) => ({ code: 0, stdout }),
      (error: { code: number; stdout: string }) => error,
    );
    const provider = JSON.parse(check.stdout) as { ok: boolean; message: string };
    // On a machine whose onnxruntime-node runs on CUDA the check passes, and this test has nothing to see.
    if (provider.ok) return expect(check.code).toBe(0);
    // Without the CUDA provider library (onnxruntime-node's install script skips it, see README):
    expect(check.code).toBe(3);
    expect(provider.message).toContain("ONNXRUNTIME_NODE_INSTALL=cuda12");
    const result = await gpuBench(["--model", fp32]);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain("gpu-bench: stopping: onnxruntime-node has no working CUDA provider here");
  });

  it("--dry-run checks the folders and the provider and prints the runs it would make", async () => {
    const { fp32, fp16 } = await ensureTinyModels();
    const result = await gpuBench(["--model", fp32, "--model", fp16, "--sizes", "512,1024", "--steps", "6", "--dry-run"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/check-cuda-provider: |dry run: a real run would stop here \(status 3\)/);
    const runs = result.stdout.split("\n").filter((line) => line.includes("bench/index.ts real-size"));
    expect(runs).toHaveLength(4);
    expect(runs[3]).toContain(`--model ${fp16} --device cuda --steps 6 --size 1024 --json`);
  });

  it("refuses bad arguments and incomplete folders by name (status 2)", async () => {
    const { fp32 } = await ensureTinyModels();
    expect(await gpuBench(["--model", path.join(fp32, "unet")])).toMatchObject({ code: 2, stderr: expect.stringContaining("missing model_index.json") });
    expect(await gpuBench(["--model", fp32, "--sizes", "500"])).toMatchObject({ code: 2, stderr: expect.stringContaining('--sizes must be multiples of 8 from 64 to 2048, comma-separated; got "500"') });
    expect(await gpuBench(["--make", "/tmp/x"])).toMatchObject({ code: 2, stderr: expect.stringContaining("--make needs --diffusers-src") });
    expect(await gpuBench(["--model", fp32, "--device", "tpu"])).toMatchObject({ code: 2, stderr: expect.stringContaining('--device must be cuda or cpu; got "tpu"') });
  });

  it("--device cpu runs the same bench loop here and keeps each report", async () => {
    const { fp32 } = await ensureTinyModels();
    const out = await mkdtemp(path.join(os.tmpdir(), "maskflow-gpu-bench-"));
    try {
      const result = await gpuBench(["--model", fp32, "--device", "cpu", "--steps", "2", "--sizes", "128", "--out", out]);
      expect(result.code, result.stderr).toBe(0);
      const report = JSON.parse(await readFile(path.join(out, `${path.basename(fp32)}-cpu-128.json`), "utf8")) as Record<string, unknown>;
      expect(report).toMatchObject({ device: "cpu", size: "128x128, 2 DDIM steps, guidance 7.5, 1 sample, float32" });
      expect(typeof report.peakRssBytes).toBe("number");
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
