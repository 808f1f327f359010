// A CPU random generator that reproduces torch.Generator("cpu") bit for bit, so that a seed
// gives the same initial latents as diffusers' `randn_tensor(shape, generator=g)`.
//
// Ported from PyTorch's sources (BSD licence), read for behaviour, not copied:
//  - aten/src/ATen/core/MT19937RNGEngine.h: mt19937 seeded with the LOW 32 BITS of the 64-bit
//    seed (`state_[0] = seed & 0xffffffff`); the full seed is only remembered (initial_seed).
//  - aten/src/ATen/CPUGeneratorImpl.cpp: random() = one 32-bit draw; random64() = two draws,
//    the first in the high word. manual_seed also clears the cached Box–Muller sample.
//  - aten/src/ATen/core/TransformationHelper.h: uniform float = (bits & (2^24-1)) * 2^-24 from
//    random(); uniform double = (bits & (2^53-1)) * 2^-53 from random64().
//  - aten/src/ATen/core/DistributionsHelper.h: normal_distribution<double> (Box–Muller, the
//    second value cached in the generator and returned by the next scalar draw).
//  - aten/src/ATen/native/cpu/DistributionTemplates.h: normal_kernel. A contiguous float tensor
//    of 16 or more elements takes normal_fill: all uniforms first, then Box–Muller over blocks
//    of 16 (u[j] with u[j+8]), the tail recomputed as the last 16 with fresh uniforms. Smaller
//    tensors take the scalar double path, cast to float.
//  - aten/src/ATen/native/cpu/avx_mathfun.h: on x86 builds dispatched to AVX2 (the usual case on
//    desktop CPUs) the 16-wide Box–Muller uses Cephes-style float log/sincos approximations,
//    not libm, so its values differ from the portable kernel in the last bits. torch's AVX2
//    kernels are compiled with -mfma, and GCC contracts some of avx_mathfun's multiply-adds into
//    fused ones (one rounding instead of two): which ones was found by trying every pattern
//    against torch 1.13.1's output (test/parity/README.md), and they are emulated exactly (fmaf).
//    This "avx2" kernel is the default: it equals torch's CPU generator on x86-64 with AVX2 + FMA.
//    The portable kernel (std::log/cos/sin on float) is what ARM and non-AVX2 dispatch run; it
//    is approximated here, not reproduced bit for bit (see boxMuller16Libm).
import { fmaf } from "./float32-fma.ts";

const MT_N = 624;
const MT_M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

const UINT64_MAX = (1n << 64n) - 1n;
const TWO_POW_32 = 4294967296;
const FLOAT_UNIFORM_SCALE = 1 / 16777216; // 2^-24: float has 24 significand bits
const DOUBLE_UNIFORM_SCALE = 1 / 9007199254740992; // 2^-53: double has 53 significand bits
const VECTORISED_BLOCK = 16;
const MAX_RANDN_COUNT = 2 ** 30;

/** Checks and converts a user seed; -1 (the Segmind/diffusers "random" value) picks one. */
/** A seed's text: 20 digits, a sign and some surrounding spaces at the most. */
const MAX_SEED_TEXT = 32;

export function parseSeed(value: number | bigint | string): bigint {
  let seed: bigint;
  if (typeof value === "bigint") {
    seed = value;
  } else if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw new Error(
        `seed must be an integer from 0 to ${UINT64_MAX} (or -1 for random); got ${value}` +
          (Number.isInteger(value) ? " (beyond 2^53: pass it as a string or bigint)" : ""),
      );
    }
    seed = BigInt(value);
  } else {
    // 2^64 − 1 has 20 digits. The digit count is checked before BigInt, whose parse is quadratic in the length:
    // a 10,000,000-digit seed would hold the event loop for seconds before being refused as out of range.
    if (value.length > MAX_SEED_TEXT) {
      throw new Error(`seed must be an integer from 0 to ${UINT64_MAX} (or -1 for random), at most 20 digits; got ${value.length.toLocaleString("en-US")} characters`);
    }
    const text = value.trim();
    if (!/^-?\d+$/.test(text)) {
      throw new Error(`seed must be an integer from 0 to ${UINT64_MAX} (or -1 for random); got "${value}"`);
    }
    seed = BigInt(text);
  }
  if (seed === -1n) return randomSeed();
  if (seed < 0n || seed > UINT64_MAX) {
    throw new Error(`seed must be an integer from 0 to ${UINT64_MAX} (or -1 for random); got ${seed}`);
  }
  return seed;
}

/**
 * A fresh random seed, what seed -1 resolves to. torch's CPU default generator reads 64 bits
 * from /dev/urandom; we keep 53 of them (as torch does for CUDA seeds) so that the seed survives
 * a round trip through JSON numbers and can be typed back in to reproduce an image. Only the
 * low 32 bits reach the Mersenne Twister, so no randomness of the noise is lost.
 */
export function randomSeed(): bigint {
  const words = new Uint32Array(2);
  crypto.getRandomValues(words);
  return (BigInt(words[0] & 0x1fffff) << 32n) | BigInt(words[1]);
}

/**
 * Which of torch's CPU normal kernels to reproduce for tensors of 16 or more elements:
 * "avx2" (x86 with AVX2, avx_mathfun approximations) or "default" (float libm, as on ARM).
 */
export type TorchCpuKernel = "avx2" | "default";

export interface TorchGeneratorOptions {
  cpuKernel?: TorchCpuKernel;
}

export class TorchGenerator {
  readonly #seed: bigint;
  readonly #boxMuller16: (data: Float32Array, offset: number) => void;
  readonly #state = new Uint32Array(MT_N);
  #left = 1;
  #next = 0;
  // torch's next_double_normal_sample_: the sin half of the last scalar Box–Muller pair.
  #cachedNormal: number | null = null;

  constructor(seed: number | bigint, options: TorchGeneratorOptions = {}) {
    this.#boxMuller16 = (options.cpuKernel ?? "avx2") === "avx2" ? boxMuller16Avx2 : boxMuller16Libm;
    if (typeof seed === "number" && !Number.isInteger(seed)) {
      throw new Error(`seed must be an integer from 0 to ${UINT64_MAX}; got ${seed}`);
    }
    const full = typeof seed === "bigint" ? seed : BigInt(seed);
    if (full < 0n || full > UINT64_MAX) {
      throw new Error(`seed must be an integer from 0 to ${UINT64_MAX}; got ${full}`);
    }
    this.#seed = full;
    const state = this.#state;
    state[0] = Number(full & 0xffffffffn);
    for (let j = 1; j < MT_N; j++) {
      const previous = state[j - 1];
      state[j] = Math.imul(1812433253, previous ^ (previous >>> 30)) + j;
    }
  }

  /** The seed as given (torch's initial_seed()), including bits above 32 that mt19937 ignores. */
  get initialSeed(): bigint {
    return this.#seed;
  }

  /** `torch.randn(count, generator=g)` as float32; successive calls continue the stream. */
  randn(count: number): Float32Array {
    if (!Number.isSafeInteger(count) || count < 0 || count > MAX_RANDN_COUNT) {
      throw new Error(`randn count must be a non-negative integer; got ${count}`);
    }
    const out = new Float32Array(count);
    if (count >= VECTORISED_BLOCK) {
      this.#normalFill(out);
    } else {
      for (let i = 0; i < count; i++) out[i] = this.#scalarNormal();
    }
    return out;
  }

  /** One 32-bit output of mt19937 (torch's random()). */
  nextUint32(): number {
    if (--this.#left === 0) this.#twist();
    let y = this.#state[this.#next++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  #twist(): void {
    const state = this.#state;
    let k = 0;
    for (; k < MT_N - MT_M; k++) {
      const y = (state[k] & UPPER_MASK) | (state[k + 1] & LOWER_MASK);
      state[k] = state[k + MT_M] ^ (y >>> 1) ^ (state[k + 1] & 1 ? MATRIX_A : 0);
    }
    for (; k < MT_N - 1; k++) {
      const y = (state[k] & UPPER_MASK) | (state[k + 1] & LOWER_MASK);
      state[k] = state[k + MT_M - MT_N] ^ (y >>> 1) ^ (state[k + 1] & 1 ? MATRIX_A : 0);
    }
    const y = (state[MT_N - 1] & UPPER_MASK) | (state[0] & LOWER_MASK);
    state[MT_N - 1] = state[MT_M - 1] ^ (y >>> 1) ^ (state[0] & 1 ? MATRIX_A : 0);
    this.#left = MT_N;
    this.#next = 0;
  }

  #uniformFloat(): number {
    return (this.nextUint32() & 0xffffff) * FLOAT_UNIFORM_SCALE;
  }

  #uniformDouble(): number {
    // random64() = (first << 32) | second; its low 53 bits are exact in a double.
    const high = this.nextUint32() & 0x1fffff;
    const low = this.nextUint32();
    return (high * TWO_POW_32 + low) * DOUBLE_UNIFORM_SCALE;
  }

  // at::normal_distribution<double>: u1 sets the angle, u2 the radius; the sin half is cached.
  #scalarNormal(): number {
    if (this.#cachedNormal !== null) {
      const cached = this.#cachedNormal;
      this.#cachedNormal = null;
      return cached;
    }
    const u1 = this.#uniformDouble();
    const u2 = this.#uniformDouble();
    const radius = Math.sqrt(-2 * Math.log1p(-u2));
    const theta = 2 * Math.PI * u1;
    this.#cachedNormal = radius * Math.sin(theta);
    return radius * Math.cos(theta);
  }

  #normalFill(out: Float32Array): void {
    const size = out.length;
    for (let i = 0; i < size; i++) out[i] = this.#uniformFloat();
    for (let i = 0; i + VECTORISED_BLOCK <= size; i += VECTORISED_BLOCK) this.#boxMuller16(out, i);
    if (size % VECTORISED_BLOCK !== 0) {
      const start = size - VECTORISED_BLOCK;
      for (let i = start; i < size; i++) out[i] = this.#uniformFloat();
      this.#boxMuller16(out, start);
    }
  }
}

const fround = Math.fround;

// normal_fill_16<float> of the portable kernel, every step rounded to float32 as the C++ float
// arithmetic is. std::log/cos/sin on float call glibc's logf/cosf/sinf, which are not correctly
// rounded; the correctly rounded values used here differ from them in the last bit now and then,
// so this kernel is close to torch's (about 1 ulp on a few values), not bit for bit.
function boxMuller16Libm(data: Float32Array, offset: number): void {
  for (let j = offset; j < offset + 8; j++) {
    const u1 = fround(1 - data[j]); // [0, 1) -> (0, 1] for the log
    const u2 = data[j + 8];
    const radius = fround(Math.sqrt(fround(-2 * fround(Math.log(u1)))));
    // 2.0f * c10::pi<double> * u2 is evaluated in double, then stored as float.
    const theta = fround(2 * Math.PI * u2);
    data[j] = fround(radius * fround(Math.cos(theta)));
    data[j + 8] = fround(radius * fround(Math.sin(theta)));
  }
}

// normal_fill_16_AVX2: the same transform with avx_mathfun's log256_ps and sincos256_ps,
// emulated lane by lane with every float operation rounded as the vector unit rounds it, the
// multiply-adds GCC fused included (fmaf).
const TWO_PI_FLOAT = fround(2 * Math.PI); // _mm256_set1_ps(2.0f * c10::pi<double>)

function boxMuller16Avx2(data: Float32Array, offset: number): void {
  for (let j = offset; j < offset + 8; j++) {
    const u1 = fround(1 - data[j]);
    const u2 = data[j + 8];
    const radius = fround(Math.sqrt(fround(-2 * cephesLogf(u1))));
    const theta = fround(TWO_PI_FLOAT * u2);
    cephesSincosf(theta);
    // _mm256_fmadd_ps(n, std = 1, mean = 0) leaves n unchanged.
    data[j] = fround(radius * sincosResult.cos);
    data[j + 8] = fround(radius * sincosResult.sin);
  }
}

const floatBits = new Float32Array(1);
const intBits = new Int32Array(floatBits.buffer);

const MIN_NORM_POS = 1.1754943508222875e-38; // 0x00800000
const SQRTHF = fround(0.707106781186547524);
const LOG_P = [
  7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
  -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1,
].map(fround);
const LOG_Q1 = fround(-2.12194440e-4);
const LOG_Q2 = fround(0.693359375);

/** log256_ps for one lane; inputs here are in (0, 1], so the NaN mask never applies. */
function cephesLogf(input: number): number {
  floatBits[0] = Math.max(input, MIN_NORM_POS);
  const exponent = (intBits[0] >>> 23) - 0x7f;
  intBits[0] = (intBits[0] & ~0x7f800000) | 0x3f000000; // mantissa scaled into [0.5, 1)
  let x = floatBits[0];
  let e = fround(exponent + 1);
  if (x < SQRTHF) {
    e = fround(e - 1);
    x = fround(fround(x - 1) + x);
  } else {
    x = fround(x - 1);
  }
  const z = fround(x * x);
  let y = LOG_P[0];
  for (let k = 1; k < LOG_P.length; k++) y = fmaf(y, x, LOG_P[k]);
  y = fround(y * x);
  y = fmaf(y, z, fround(e * LOG_Q1));
  y = fround(y - fround(z * 0.5));
  x = fround(x + y);
  return fmaf(e, LOG_Q2, x);
}

const FOPI = fround(1.27323954473516); // 4 / pi
const MINUS_DP1 = fround(-0.78515625);
const MINUS_DP2 = fround(-2.4187564849853515625e-4);
const MINUS_DP3 = fround(-3.77489497744594108e-8);
const SINCOF_P0 = fround(-1.9515295891e-4);
const SINCOF_P1 = fround(8.3321608736e-3);
const SINCOF_P2 = fround(-1.6666654611e-1);
const COSCOF_P0 = fround(2.443315711809948e-5);
const COSCOF_P1 = fround(-1.388731625493765e-3);
const COSCOF_P2 = fround(4.166664568298827e-2);

const sincosResult = { sin: 0, cos: 0 };

/** sincos256_ps for one lane with a non-negative argument (theta in [0, 2*pi)). */
function cephesSincosf(theta: number): void {
  let x = Math.abs(theta);
  // Octant index: truncate x * 4/pi, then round up to even (cephes' j = (j + 1) & ~1).
  let octant = Math.trunc(fround(x * FOPI));
  octant = (octant + 1) & ~1;
  const y = octant; // exact as a float for the small octants reached here
  const flipSin = (octant & 4) !== 0;
  const sinUsesSinPoly = (octant & 2) === 0;
  const flipCos = ((octant - 2) & 4) === 0;

  // Extended-precision reduction: x = ((x - y*DP1) - y*DP2) - y*DP3.
  x = fmaf(y, MINUS_DP1, x);
  x = fmaf(y, MINUS_DP2, x);
  x = fmaf(y, MINUS_DP3, x);

  const z = fround(x * x);
  let cosPoly = fmaf(COSCOF_P0, z, COSCOF_P1);
  cosPoly = fmaf(cosPoly, z, COSCOF_P2);
  cosPoly = fround(cosPoly * z);
  cosPoly = fmaf(cosPoly, z, -fround(z * 0.5));
  cosPoly = fround(cosPoly + 1);

  let sinPoly = fmaf(SINCOF_P0, z, SINCOF_P1);
  sinPoly = fmaf(sinPoly, z, SINCOF_P2);
  sinPoly = fround(sinPoly * z);
  sinPoly = fmaf(sinPoly, x, x);

  const sin = sinUsesSinPoly ? sinPoly : cosPoly;
  const cos = sinUsesSinPoly ? cosPoly : sinPoly;
  sincosResult.sin = flipSin ? -sin : sin;
  sincosResult.cos = flipCos ? -cos : cos;
}
