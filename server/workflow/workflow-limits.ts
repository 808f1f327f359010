/**
 * How big a workflow may be, checked on the raw document before anything else looks at it, so that
 * one request cannot make validation, planning, the history or the error answer cost more than a
 * bounded amount. Each limit names the node and input it is about.
 */
import type { WorkflowProblem } from "./workflow-problem.ts";

/** Nodes in one workflow. The shipped workflows have under 20; 2,000 leaves room for generated ones. */
export const MAX_WORKFLOW_NODES = 2_000;
/** Inputs one node may name (known or not). The node with the most inputs has about 15. */
export const MAX_NODE_INPUTS = 64;
/** Characters of one text literal: a prompt is far shorter (MAX_PROMPT_CHARACTERS), a file name too. */
export const MAX_LITERAL_CHARACTERS = 1_000_000;
/** Characters of all the document's text, keys and editor state together. */
export const MAX_WORKFLOW_CHARACTERS = 4_000_000;
/** Characters of a prompt (positive or negative): CLIP reads 77 tokens, about 300 characters. */
export const MAX_PROMPT_CHARACTERS = 10_000;

/**
 * The size problems of a raw document (before its shape is known to be right), or none. Iterative,
 * and stops counting once past the total limit, so it costs at most that many characters' work.
 */
export function workflowSizeProblems(raw: unknown): WorkflowProblem[] {
  const problems: WorkflowProblem[] = [];
  if (raw === null || typeof raw !== "object") return problems;
  const nodes = (raw as { nodes?: unknown }).nodes;
  if (Array.isArray(nodes)) {
    if (nodes.length > MAX_WORKFLOW_NODES) {
      problems.push({
        code: "too_large",
        message: `nodes: the workflow has ${nodes.length.toLocaleString("en-US")} nodes; the limit is ${MAX_WORKFLOW_NODES.toLocaleString("en-US")}`,
      });
      return problems;
    }
    nodes.forEach((node: unknown, index) => problems.push(...nodeSizeProblems(node, index)));
  }
  const characters = countCharacters(raw, MAX_WORKFLOW_CHARACTERS);
  if (characters > MAX_WORKFLOW_CHARACTERS) {
    problems.push({
      code: "too_large",
      message: `workflow: the document holds more than ${MAX_WORKFLOW_CHARACTERS.toLocaleString("en-US")} characters of text, the limit`,
    });
  }
  return problems;
}

/** The problem with a prompt longer than MAX_PROMPT_CHARACTERS, named by its field; undefined when it fits. */
export function promptLengthProblem(field: string, text: string): string | undefined {
  if (text.length <= MAX_PROMPT_CHARACTERS) return undefined;
  return `${field} is ${text.length.toLocaleString("en-US")} characters long; the limit is ${MAX_PROMPT_CHARACTERS.toLocaleString("en-US")}`;
}

function nodeSizeProblems(node: unknown, index: number): WorkflowProblem[] {
  if (node === null || typeof node !== "object") return [];
  const id = (node as { id?: unknown }).id;
  const nodeId = typeof id === "string" ? id.slice(0, 64) : `#${index}`;
  const inputs = (node as { inputs?: unknown }).inputs;
  if (inputs === null || typeof inputs !== "object" || Array.isArray(inputs)) return [];
  const names = Object.keys(inputs);
  if (names.length > MAX_NODE_INPUTS) {
    return [{
      code: "too_large",
      nodeId,
      message: `inputs: the node has ${names.length.toLocaleString("en-US")} inputs; the limit is ${MAX_NODE_INPUTS}`,
    }];
  }
  const problems: WorkflowProblem[] = [];
  for (const name of names) {
    const value = (inputs as Record<string, unknown>)[name];
    if (typeof value === "string" && value.length > MAX_LITERAL_CHARACTERS) {
      problems.push({
        code: "too_large",
        nodeId,
        input: name.slice(0, 200),
        message: `the text is ${value.length.toLocaleString("en-US")} characters long; the limit for one value is ${MAX_LITERAL_CHARACTERS.toLocaleString("en-US")}`,
      });
    }
  }
  return problems;
}

/** Characters of every string and key under `value`, counted without recursion; stops once past `stopAfter`. */
function countCharacters(value: unknown, stopAfter: number): number {
  let total = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0 && total <= stopAfter) {
    const item = pending.pop();
    if (typeof item === "string") {
      total += item.length;
    } else if (Array.isArray(item)) {
      total += item.length;
      for (const element of item) pending.push(element);
    } else if (item !== null && typeof item === "object") {
      for (const [key, element] of Object.entries(item)) {
        total += key.length + 1;
        pending.push(element);
      }
    } else {
      total += 1;
    }
  }
  return total;
}
