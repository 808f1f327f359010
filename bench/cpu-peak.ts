/**
 * The machine's fp32 peak, estimated from the CPU: cores × clock × FMA lanes per cycle × 2 flops.
 * Lanes: two FMA pipes of 256 bits (8 floats each) with AVX2+FMA, which is also what AMD Zen 4 runs
 * AVX-512 on; Intel cores with two 512-bit FMA units reach twice this. Without FMA, 4-wide SSE
 * adds and multiplies on two pipes (one flop each).
 */
import { readFileSync } from "node:fs";
import os from "node:os";

export interface CpuPeak {
  readonly gflops: number;
  /** How it was reached, printed beside the figure. */
  readonly formula: string;
}

export function estimateFp32Peak(): CpuPeak {
  const cores = os.availableParallelism();
  let ghz = (os.cpus()[0]?.speed ?? 0) / 1000;
  let flags = "";
  try {
    const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
    flags = cpuinfo.match(/^flags\s*:(.*)$/m)?.[1] ?? "";
    // Virtual machines often report a speed of 0 to os.cpus(); the kernel's own line is there.
    const mhz = Number(cpuinfo.match(/^cpu MHz\s*:\s*([\d.]+)/m)?.[1]);
    if (!ghz && mhz > 0) ghz = mhz / 1000;
  } catch {
    // Not Linux: assume AVX2 with FMA, what every x86-64 machine of the last decade has.
    flags = " avx2 fma ";
  }
  const has = (flag: string) => new RegExp(`\\b${flag}\\b`).test(flags);
  const fma = has("fma") && has("avx2");
  const flopsPerCycle = fma ? 2 * 8 * 2 : 2 * 4;
  const model = os.cpus()[0]?.model.trim() ?? "unknown CPU";
  return {
    gflops: cores * ghz * flopsPerCycle,
    formula: `${model}: ${cores} cores × ${ghz.toFixed(2)} GHz × ${flopsPerCycle} flops/cycle (${fma ? "2 FMA pipes × 8 fp32 lanes × 2" : "2 pipes × 4 SSE lanes"})`,
  };
}
