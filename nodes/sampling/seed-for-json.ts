/**
 * A seed as JSON can hold it exactly: a number up to 2^53 − 1, where every whole number is exact; a decimal
 * string above, where a JSON number would be rounded (the same rule as a seed written in a workflow).
 */
export function seedForJson(seed: bigint): number | string {
  return seed >= 0n && seed <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(seed) : seed.toString();
}
