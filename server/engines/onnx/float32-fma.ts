/** A float32 fused multiply-add (C's fmaf) in JavaScript, which has none. */

const fround = Math.fround;

/**
 * fmaf(a, b, c) for float32 a, b, c: the exact a·b + c rounded once to float32, as an FMA instruction
 * (vfmadd…ps) computes it. Why this is exact, not just close:
 *  - a·b of two float32 (24-bit significands) needs at most 48 bits, so p = a * b is exact in a double.
 *  - s = p + c rounds once to double; Knuth's TwoSum gives err with s + err = p + c exactly.
 *  - fround(s) can differ from the correctly rounded float32 of p + c only by double rounding, and that
 *    needs s to sit exactly on a float32 midpoint (a 25-bit number, so a double) while err ≠ 0: rounding
 *    to the nearest double is monotonic, so it never carries the sum across a midpoint, only onto one.
 *  - In that case the exact sum lies strictly on err's side of the midpoint, and the neighbour on that
 *    side is the answer. When err = 0 the sum was exact and fround's ties-to-even is the FMA's rounding.
 * Inputs here are finite and far from float32's overflow and subnormal ranges.
 */
export function fmaf(a: number, b: number, c: number): number {
  const product = a * b;
  const sum = product + c;
  const rounded = fround(sum);
  if (rounded === sum) return rounded;
  const back = sum - product;
  const err = product - (sum - back) + (c - back);
  if (err === 0) return rounded;
  const other = 2 * sum - rounded; // the float32 on sum's other side, if sum is their midpoint
  if (fround(other) !== other) return rounded; // sum is no midpoint: one rounding to float32 was all
  return err > 0 === other > rounded ? other : rounded;
}
