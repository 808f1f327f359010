/**
 * The shape every JSON body must keep to, checked in the worker that parsed it, before the value
 * reaches the event loop. A body within the byte limit can still cost seconds to rebuild as objects:
 * JSON.parse and the structured clone that carries a value between threads both slow down sharply
 * with objects of thousands of members and with many distinct keys (one object with 1,000,000 keys
 * took 1.1 s to parse, 2,000 objects of 64 distinct keys each 0.5 s). Within these limits the largest
 * body rebuilds in tens of milliseconds, and the biggest workflow Maskflow accepts (2,000 nodes of
 * 64 inputs, see workflow-limits.ts) stays well inside them.
 */

/** Objects and arrays inside each other. The deepest Maskflow document (a link in a node's inputs) is 5. */
export const MAX_JSON_DEPTH = 64;
/** Members of one object: a node has at most 64 inputs, a record of settings a few dozen. */
export const MAX_OBJECT_MEMBERS = 1_024;
/** Every value in the body: objects, arrays, strings, numbers, booleans and nulls. */
export const MAX_JSON_VALUES = 500_000;
/** Different member names in the whole body: the nodes' input names are a few hundred. */
export const MAX_DISTINCT_KEYS = 10_000;

/** Why a parsed body is refused, with the path of the value it is about (`workflow.nodes.0.inputs`). */
export interface JsonShapeProblem {
  readonly field: string;
  readonly message: string;
}

/**
 * The first limit the value breaks, or undefined. Iterative (a body nested a million deep does not
 * overflow the stack), and it stops at the first problem, so it costs at most one pass over the value.
 */
export function jsonShapeProblem(root: unknown): JsonShapeProblem | undefined {
  const keys = new Set<string>();
  let values = 0;
  const pending: { value: unknown; path: string; depth: number }[] = [{ value: root, path: "", depth: 0 }];
  while (pending.length > 0) {
    const { value, path, depth } = pending.pop()!;
    values += 1;
    if (values > MAX_JSON_VALUES) {
      return { field: "(body)", message: `request body holds more than ${MAX_JSON_VALUES.toLocaleString("en-US")} JSON values, the limit` };
    }
    if (value === null || typeof value !== "object") continue;
    if (depth >= MAX_JSON_DEPTH) {
      return { field: fieldName(path), message: `${fieldName(path)} is nested deeper than ${MAX_JSON_DEPTH} levels, the limit` };
    }
    if (Array.isArray(value)) {
      for (let index = value.length - 1; index >= 0; index--) pending.push({ value: value[index], path: join(path, String(index)), depth: depth + 1 });
      continue;
    }
    const names = Object.keys(value);
    if (names.length > MAX_OBJECT_MEMBERS) {
      return {
        field: fieldName(path),
        message: `${fieldName(path)} has ${names.length.toLocaleString("en-US")} members; the limit for one object is ${MAX_OBJECT_MEMBERS.toLocaleString("en-US")}`,
      };
    }
    for (let index = names.length - 1; index >= 0; index--) {
      const name = names[index]!;
      keys.add(name);
      if (keys.size > MAX_DISTINCT_KEYS) {
        return { field: "(body)", message: `request body uses more than ${MAX_DISTINCT_KEYS.toLocaleString("en-US")} different member names, the limit` };
      }
      pending.push({ value: (value as Record<string, unknown>)[name], path: join(path, name), depth: depth + 1 });
    }
  }
  return undefined;
}

/** A member name is shown cut short: it came from the client and may be megabytes long. */
function join(path: string, name: string): string {
  const shown = name.length > 64 ? `${name.slice(0, 64)}…` : name;
  return path ? `${path}.${shown}` : shown;
}

function fieldName(path: string): string {
  return path || "(body)";
}
