// The real-size benchmark run as a user runs it (node bin/run-ts.js bench/index.ts real-size …) on the
// tiny model: every figure is there and of the right kind. Its values are the bench's business, not a test's.
import { execFile } from "node:child_process";
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
  });
});
