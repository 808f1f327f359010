/**
 * Maskflow against diffusers itself, end to end: test/fixtures/diffusers-parity holds a tiny model with the real
 * SD-inpainting architecture (diffusers' classes, random weights, exported to ONNX; its VAE makes one latent of
 * 4×4 pixels) and the pictures diffusers' StableDiffusionInpaintPipeline made from it (test/parity/e2e_fixture.py).
 * Every case runs through `maskflow run` and each PNG is compared with diffusers' own.
 *
 * Not bit for bit: onnxruntime's kernels and torch's differ in the last float32 bits (the VAE encoder's
 * convolutions most), which can move a pixel by a grey level. `npm run bench parity` prints each case's PSNR.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { type DiffusersCasesRun, loadDiffusersCases, runDiffusersCases } from "./helpers/diffusers-e2e-cases.ts";

const cases = await loadDiffusersCases();
let run: DiffusersCasesRun;

beforeAll(async () => {
  run = await runDiffusersCases(cases);
}, 120_000);

describe("maskflow run against diffusers' StableDiffusionInpaintPipeline on the same tiny model", () => {
  it("covers several schedulers (an ancestral one and LMS), strength 1 and below, no guidance, two samples, a non-square size", () => {
    expect(new Set(cases.map((c) => c.scheduler)).size).toBeGreaterThanOrEqual(4);
    expect(cases.some((c) => c.scheduler === "Euler a") && cases.some((c) => c.scheduler === "LMS" && c.strength < 1)).toBe(true);
    expect(cases.some((c) => c.strength === 1) && cases.some((c) => c.guidance === 1) && cases.some((c) => c.samples === 2)).toBe(true);
    expect(cases.some((c) => c.width !== c.height)).toBe(true);
  });

  it("runs every case and writes one PNG per sample", () => {
    // stderr carries the progress lines of a non-TTY run; no error among them.
    expect(run.stderr).not.toMatch(/error|failed/i);
    expect(run.code).toBe(0);
    expect(run.stdout.trim().split("\n")).toHaveLength(cases.reduce((n, c) => n + c.samples, 0));
  });

  for (const c of cases) {
    it(`${c.name}: ${c.scheduler}, ${c.width}×${c.height}, strength ${c.strength}, guidance ${c.guidance}, ${c.samples} sample(s): PSNR ≥ 60 dB, at most 2 grey levels off`, () => {
      const results = run.results.get(c.name) ?? [];
      expect(results).toHaveLength(c.samples);
      for (const { distance } of results) {
        expect(distance.pixels).toBe(c.width * c.height);
        expect(distance.psnr).toBeGreaterThanOrEqual(60);
        expect(distance.maxDifference).toBeLessThanOrEqual(2);
      }
    });
  }
});
