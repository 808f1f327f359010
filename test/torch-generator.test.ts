import { describe, it, expect } from "vitest";
import { fmaf } from "../server/engines/onnx/float32-fma.ts";
import { TorchGenerator, parseSeed, randomSeed } from "../server/engines/onnx/torch-generator.ts";
import { loadRandnGoldens, replayRandn } from "./helpers/parity-goldens.ts";

// Expected values are torch outputs published in public code (printed with full float64 repr of
// the float32 values), so a match means bit-exact agreement with torch's CPU generator:
//  - torch.manual_seed(0); torch.randn(3, 9): a pytest that checks torch installs.
//  - torch.manual_seed(0); X = randn(6, 4); W = randn(3, 4); b = randn(3): baked reference
//    case of a numpy `linear` test.
//  - torch.manual_seed(0); torch.randn(7) (the "randn" list of an RNG agreement table).
//  - torch.manual_seed(42); torch.randn(3) / (2, 3): countless tutorials (4 decimals).
const SEED0_RANDN_3x9 = [
  -1.1258398294448853, -1.152360200881958, -0.2505785822868347, -0.4338788092136383,
  0.8487103581428528, 0.6920091509819031, -0.31601276993751526, -2.1152193546295166,
  0.32227492332458496, -1.2633347511291504, 0.34998318552970886, 0.26604941487312317,
  0.16645534336566925, 0.8743818402290344, -0.14347384870052338, -0.1116093322634697,
  -0.6135830879211426, 0.03159274160861969, -0.4926769733428955, 0.05373690277338028,
  0.6180566549301147, -0.41280221939086914, -0.8410648107528687, -2.316041946411133,
  -0.10230965167284012, 0.7924439907073975, -0.28966769576072693,
];
const SEED0_X_6x4 = [
  -1.1258398294448853, -1.152360200881958, -0.2505785822868347, -0.4338788092136383,
  0.8487103581428528, 0.6920091509819031, -0.31601276993751526, -2.1152193546295166,
  0.46809640526771545, -0.1577124446630478, 1.4436601400375366, 0.26604941487312317,
  0.16645534336566925, 0.8743818402290344, -0.14347384870052338, -0.1116093322634697,
  0.9318265914916992, 1.2590092420578003, 2.0049805641174316, 0.05373690277338028,
  0.6180566549301147, -0.41280221939086914, -0.8410648107528687, -2.316041946411133,
];
const SEED0_THEN_W_3x4 = [
  0.3703935444355011, 1.4565025568008423, 0.9398099184036255, 0.7748488187789917,
  0.19186942279338837, 1.2637947797775269, -1.2904350757598877, -0.7911027073860168,
  -0.02087947353720665, -0.7184800505638123, 0.5186367630958557, -1.3125219345092773,
];
const SEED0_THEN_B_3 = [0.1919950693845749, 0.5427713394165039, -2.2187793254852295];
const SEED0_RANDN_7 = [
  1.5409960746765137, -0.293428897857666, -2.1787893772125244, 0.5684312582015991,
  -1.0845223665237427, -1.3985954523086548, 0.40334683656692505,
];

const asFloat32 = (values: number[]) => Array.from(new Float32Array(values));

describe("TorchGenerator.randn matches torch.randn bit for bit", () => {
  it("scalar path (< 16 values): seed 0, randn(7) and the README's 4-decimal randn(5)", () => {
    expect(Array.from(new TorchGenerator(0).randn(7))).toEqual(asFloat32(SEED0_RANDN_7));
    const five = Array.from(new TorchGenerator(0).randn(5), (v) => Number(v.toFixed(4)));
    expect(five).toEqual([1.541, -0.2934, -2.1788, 0.5684, -1.0845]);
  });

  it("scalar path: seed 42, randn(2, 3)", () => {
    const values = Array.from(new TorchGenerator(42).randn(6), (v) => Number(v.toFixed(4)));
    expect(values).toEqual([0.3367, 0.1288, 0.2345, 0.2303, -1.1229, -0.1863]);
  });

  it("vectorised path with a recomputed tail: seed 0, randn(3, 9)", () => {
    expect(Array.from(new TorchGenerator(0).randn(27))).toEqual(asFloat32(SEED0_RANDN_3x9));
  });

  it("consecutive calls continue one stream, including the cached Box–Muller half", () => {
    const generator = new TorchGenerator(0);
    expect(Array.from(generator.randn(24))).toEqual(asFloat32(SEED0_X_6x4));
    expect(Array.from(generator.randn(12))).toEqual(asFloat32(SEED0_THEN_W_3x4));
    // 3 values: a fresh pair (cos returned, sin cached), the cached sin, a fresh cos.
    expect(Array.from(generator.randn(3))).toEqual(asFloat32(SEED0_THEN_B_3));
  });

  it("seed 0, randn(10, 4) then randn(4, 4): the published 4-decimal tables", () => {
    const generator = new TorchGenerator(0);
    const x = Array.from(generator.randn(40), (v) => Number(v.toFixed(4)));
    expect(x.slice(24, 40)).toEqual([
      -0.2159, -0.7425, 0.5627, 0.2596, -0.174, -0.6787, 0.9383, 0.4889,
      1.2032, 0.0845, -1.2001, -0.0048, -0.5181, -0.3067, -1.581, 1.7066,
    ]);
    const w = Array.from(generator.randn(16), (v) => Number(v.toFixed(4)));
    expect(w).toEqual([
      0.2055, -0.4503, -0.5731, -0.5554, 0.5943, 1.5419, 0.5073, -0.591,
      -1.3253, 0.1886, -0.0691, -0.4949, -1.4959, -0.1938, 0.4455, 1.3253,
    ]);
  });

  it("the portable (non-AVX2) kernel agrees to float rounding, not bit for bit", () => {
    const portable = new TorchGenerator(0, { cpuKernel: "default" }).randn(27);
    const avx2 = new TorchGenerator(0).randn(27);
    for (let i = 0; i < 27; i++) expect(Math.abs(portable[i] - avx2[i])).toBeLessThan(1e-5);
    expect(Array.from(portable)).not.toEqual(Array.from(avx2));
  });

  it("seeds wider than 32 bits reach mt19937 as their low 32 bits, as in torch", () => {
    const segmind = new TorchGenerator(17123564234n);
    const low32 = new TorchGenerator(17123564234 % 2 ** 32);
    expect(segmind.initialSeed).toBe(17123564234n);
    expect(Array.from(segmind.randn(20))).toEqual(Array.from(low32.randn(20)));
    const max = new TorchGenerator(2n ** 64n - 1n);
    expect(Array.from(max.randn(8))).toEqual(Array.from(new TorchGenerator(2 ** 32 - 1).randn(8)));
    expect(Array.from(new TorchGenerator(2n ** 32n).randn(4))).toEqual(
      Array.from(new TorchGenerator(0).randn(4)),
    );
  });

  // Its speed is a benchmark's business (a timed test fails on a busy machine), not this test's.
  it("produces 4×4×96×96 latents with a standard normal spread", () => {
    const generator = new TorchGenerator(1234);
    const latents = generator.randn(4 * 4 * 96 * 96);
    let sum = 0;
    let squares = 0;
    for (const v of latents) {
      sum += v;
      squares += v * v;
    }
    const mean = sum / latents.length;
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(squares / latents.length - mean * mean - 1)).toBeLessThan(0.02);
  });

  it("rejects counts that are not non-negative integers and returns empty for 0", () => {
    expect(new TorchGenerator(0).randn(0).length).toBe(0);
    expect(() => new TorchGenerator(0).randn(-1)).toThrow(/count/);
    expect(() => new TorchGenerator(0).randn(1.5)).toThrow(/count/);
  });
});

describe("parseSeed", () => {
  it("accepts numbers, bigints and decimal strings up to 2^64-1", () => {
    expect(parseSeed(0)).toBe(0n);
    expect(parseSeed(17123564234)).toBe(17123564234n);
    expect(parseSeed("18446744073709551615")).toBe(2n ** 64n - 1n);
    expect(parseSeed(" 42 ")).toBe(42n);
    expect(parseSeed(5n)).toBe(5n);
  });

  it("rejects negative seeds other than -1, out-of-range and non-integer values", () => {
    for (const bad of [-2, "-5", 2n ** 64n, "18446744073709551616", 1.5, "abc", "", Number.NaN]) {
      expect(() => parseSeed(bad)).toThrow(/seed.*0 to 18446744073709551615/);
    }
    expect(() => parseSeed(2 ** 60)).toThrow(/seed/);
  });

  it("resolves -1 to a fresh random seed that is JSON-safe", () => {
    const seeds = new Set<bigint>();
    for (let i = 0; i < 8; i++) {
      const seed = parseSeed(i % 2 === 0 ? -1 : "-1");
      expect(seed).toBeGreaterThanOrEqual(0n);
      expect(seed).toBeLessThanOrEqual(BigInt(Number.MAX_SAFE_INTEGER));
      seeds.add(seed);
    }
    expect(seeds.size).toBeGreaterThan(1);
    expect(randomSeed()).not.toBe(randomSeed());
  });
});

// Goldens made by test/parity/torch_randn_goldens.py with torch 1.13.1 (Debian) on x86-64 with AVX2 + FMA:
// 158 cases over 12 seeds, 12 shapes and the three ways diffusers draws, 85,100 values per kernel.
describe("TorchGenerator against torch's own randn goldens", () => {
  it("the AVX2 kernel (the default) equals torch's AVX2 + FMA build on every value", () => {
    const draws = replayRandn(loadRandnGoldens("avx2"));
    const notExact = draws.filter((d) => d.distance.exact !== d.distance.count).map((d) => `${d.label}: ${d.distance.count - d.distance.exact} values off`);
    expect(notExact).toEqual([]);
    expect(draws.reduce((sum, d) => sum + d.distance.count, 0)).toBe(85_100);
  });

  it("the portable kernel is within 2 float32 ulp of torch's portable kernel (glibc logf/sinf/cosf are not correctly rounded)", () => {
    const draws = replayRandn(loadRandnGoldens("default"));
    const total = draws.reduce((sum, d) => sum + d.distance.count, 0);
    const exact = draws.reduce((sum, d) => sum + d.distance.exact, 0);
    expect(Math.max(...draws.map((d) => d.distance.maxUlp))).toBeLessThanOrEqual(2);
    // The scalar path (< 16 values) is the same double code in both kernels, so it stays exact.
    expect(draws.filter((d) => d.distance.count < 16).every((d) => d.distance.exact === d.distance.count)).toBe(true);
    expect(exact / total).toBeGreaterThan(0.98);
  });
});

describe("fmaf: a float32 fused multiply-add, rounded once", () => {
  const f = Math.fround;
  it("a product that lands the double sum on a float32 midpoint is rounded by the exact sum's side", () => {
    // (1 - 2^-23)(1 + 2^-23) = 1 - 2^-46: the exact a·b + c is just below the midpoint 1 + 2^-23 + 2^-24,
    // which the double sum rounds onto; rounding that again would tie to even (1 + 2^-22).
    const a = f(2 ** -24 * (1 - 2 ** -23));
    const b = f(1 + 2 ** -23);
    const c = f(1 + 2 ** -23);
    expect(f(a * b + c)).toBe(1 + 2 ** -22);
    expect(fmaf(a, b, c)).toBe(1 + 2 ** -23);
    // The other side: -a·b + (1 + 3·2^-23) is just above the midpoint 1 + 5·2^-24, whose even neighbour is below.
    const c2 = f(1 + 3 * 2 ** -23);
    expect(f(-a * b + c2)).toBe(1 + 2 ** -22);
    expect(fmaf(-a, b, c2)).toBe(c2);
  });

  it("an exact tie keeps ties-to-even, and ordinary sums round once", () => {
    expect(fmaf(2 ** -24, 1, 1)).toBe(1);
    expect(fmaf(2 ** -24, 1, f(1 + 2 ** -23))).toBe(1 + 2 ** -22);
    expect(fmaf(f(0.1), f(3), f(0.2))).toBe(f(f(0.1) * f(3) + f(0.2)));
    expect(fmaf(-2, 0.5, 1)).toBe(0);
  });
});
