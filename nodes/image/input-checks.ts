/**
 * Checks a node makes on its own inputs, with messages that name the node, the input and what
 * is allowed, so a bad value in a hand-written workflow is fixed without reading code.
 */

export function requireOption<const T extends string>(node: string, input: string, value: string, options: readonly T[]): T {
  if (!(options as readonly string[]).includes(value)) {
    throw new Error(`${node}: input \`${input}\` is "${value}"; allowed values are ${options.map((o) => `"${o}"`).join(", ")}`);
  }
  return value as T;
}

export function requireInteger(node: string, input: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${node}: input \`${input}\` is ${value}; it must be a whole number from ${min} to ${max}`);
  }
  return value;
}
