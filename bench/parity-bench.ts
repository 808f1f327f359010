/**
 * How far Maskflow is from torch and diffusers, stage by stage, from the goldens and the fixture committed in
 * test/fixtures/diffusers-parity (test/parity/README.md says how they were made). Distances, not speed:
 * exact values, worst float32 ulp, worst difference relative to the golden's scale, and per end-to-end case
 * the PSNR and largest difference of `maskflow run`'s picture against diffusers' own.
 */
import { loadDiffusersCases, runDiffusersCases } from "../test/helpers/diffusers-e2e-cases.ts";
import { loadRandnGoldens, loadSchedulerGoldens, replayRandn, replaySchedulerRun } from "../test/helpers/parity-goldens.ts";

export async function benchParity(): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = {};

  for (const kernel of ["avx2", "default"] as const) {
    const draws = replayRandn(loadRandnGoldens(kernel));
    const total = draws.reduce((sum, d) => sum + d.distance.count, 0);
    const exact = draws.reduce((sum, d) => sum + d.distance.exact, 0);
    out[`parity generator (${kernel} kernel) exact values`] = `${exact} of ${total}, worst ${Math.max(...draws.map((d) => d.distance.maxUlp))} ulp`;
  }

  const byName = new Map<string, { runs: number; failed: number; timestepUlp: number; sigmaUlp: number; worst: number; finalExact: number; values: number }>();
  for (const [goldens, run] of ["schedulers.json", "lcm-scheduler.json"].map((file) => loadSchedulerGoldens(file)).flatMap((g) => g.runs.map((r) => [g, r] as const))) {
    const replay = replaySchedulerRun(goldens, run);
    const row = byName.get(run.name) ?? { runs: 0, failed: 0, timestepUlp: 0, sigmaUlp: 0, worst: 0, finalExact: 0, values: 0 };
    row.runs++;
    if (replay.error || !replay.final) row.failed++;
    row.timestepUlp = Math.max(row.timestepUlp, replay.timesteps.maxUlp);
    row.sigmaUlp = replay.sigmas ? Math.max(row.sigmaUlp, replay.sigmas.maxUlp) : -1;
    row.worst = Math.max(row.worst, ...replay.steps.map((s) => s.relative));
    row.finalExact += replay.final?.exact ?? 0;
    row.values += replay.final?.count ?? 0;
    byName.set(run.name, row);
  }
  for (const [name, row] of byName) {
    out[`parity scheduler ${name}`] =
      `${row.runs - row.failed}/${row.runs} runs, timesteps ≤ ${row.timestepUlp} ulp, ${row.sigmaUlp < 0 ? "no sigmas" : `sigmas ≤ ${row.sigmaUlp} ulp`}, ` +
      `every step ≤ ${row.worst.toExponential(1)} relative, final values exact ${row.finalExact}/${row.values}`;
  }

  const cases = await loadDiffusersCases();
  const run = await runDiffusersCases(cases);
  if (run.code !== 0) out["parity end to end"] = `maskflow run failed (exit ${run.code}): ${run.stderr.trim().split("\n").pop()}`;
  for (const c of cases) {
    for (const [n, { distance }] of (run.results.get(c.name) ?? []).entries()) {
      out[`parity end to end ${c.name}${c.samples > 1 ? ` #${n + 1}` : ""}`] =
        `PSNR ${distance.psnr.toFixed(1)} dB, max ${distance.maxDifference} grey levels, ${((100 * distance.identicalPixels) / distance.pixels).toFixed(1)}% pixels identical`;
    }
  }
  return out;
}
