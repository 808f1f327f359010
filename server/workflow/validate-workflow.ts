/**
 * Checks a workflow against the node registry and reports every problem at once: the shape of the
 * document, unknown node types and inputs, missing inputs, dangling links, socket type mismatches,
 * values out of range or not among the options, and cycles; then each node's own checks (a missing
 * file, a size the model cannot take), which need no model.
 */
import type { AnyNodeDefinition, CheckContext, InputSpec } from "../../nodes/node-definition.ts";
import type { NodeRegistry } from "../../nodes/registry.ts";
import { LITERAL_SOCKET_TYPES, type SocketType } from "../../nodes/socket-types.ts";
import { isLink, type WorkflowDocument, type WorkflowLiteral, type WorkflowNode, workflowSchema } from "./workflow-document.ts";
import { findCycles } from "./find-cycles.ts";
import { workflowSizeProblems } from "./workflow-limits.ts";
import { capProblems, MAX_LISTED_PROBLEMS, type WorkflowProblem } from "./workflow-problem.ts";

export type WorkflowValidation =
  | { readonly ok: true; readonly workflow: WorkflowDocument }
  | { readonly ok: false; readonly problems: WorkflowProblem[] };

const MAX_SEED = (1n << 64n) - 1n;

/** A link from an output of type `from` may feed an input of type `to`. */
export function socketAccepts(to: SocketType, from: SocketType): boolean {
  return to === from || (to === "FLOAT" && from === "INT") || (to === "SEED" && from === "INT");
}

export function validateWorkflow(
  raw: unknown,
  registry: NodeRegistry,
  options: {
    requireOutputNode?: boolean;
    /** Where pictures are looked for; without it, the nodes' checks of files are skipped (a document on its own). */
    files?: CheckContext["files"];
  } = {},
): WorkflowValidation {
  // Sizes first: everything after costs time and answer size in proportion to them.
  const sizeProblems = workflowSizeProblems(raw);
  if (sizeProblems.length) return { ok: false, problems: capProblems(sizeProblems) };
  const parsed = workflowSchema.safeParse(raw);
  if (!parsed.success) {
    return { ok: false, problems: capProblems(parsed.error.issues.map((issue) => documentProblem(raw, issue.path, issue.message))) };
  }
  const workflow = parsed.data;
  const problems: WorkflowProblem[] = [];
  const byId = new Map<string, (typeof workflow.nodes)[number]>();
  for (const node of workflow.nodes) {
    if (byId.has(node.id)) {
      problems.push({ code: "duplicate_node_id", nodeId: node.id, message: `node id "${node.id}" is used more than once` });
    }
    byId.set(node.id, node);
  }

  for (const node of workflow.nodes) {
    const definition = registry.get(node.type);
    let literalsOk = true;
    if (!definition) {
      problems.push({
        code: "unknown_node_type",
        nodeId: node.id,
        message: `unknown node type ${quoted(node.type)}; known types: ${registry.types().join(", ")}`,
      });
      continue;
    }
    for (const name of Object.keys(node.inputs)) {
      if (!(name in definition.inputs)) {
        problems.push({
          code: "unknown_input",
          nodeId: node.id,
          input: clipped(name),
          message: `${node.type} has no input ${quoted(name)}; its inputs are: ${Object.keys(definition.inputs).join(", ")}`,
        });
      }
    }
    for (const [name, spec] of Object.entries(definition.inputs)) {
      const value = node.inputs[name];
      const at = { nodeId: node.id, input: name };
      if (value === undefined || value === null) {
        if (!spec.optional && spec.default === undefined) {
          problems.push({
            ...at,
            code: "missing_input",
            message: LITERAL_SOCKET_TYPES.has(spec.type)
              ? `required ${spec.type} input "${name}" has no value`
              : `required input "${name}" must be linked to an output of type ${spec.type}`,
          });
        }
        continue;
      }
      if (isLink(value)) {
        const [sourceId, outputName] = value;
        const source = byId.get(sourceId);
        if (!source) {
          problems.push({ ...at, code: "missing_link_node", message: `links to node "${sourceId}", which is not in the workflow` });
          continue;
        }
        const sourceDefinition = registry.get(source.type);
        if (!sourceDefinition) continue; // already reported as an unknown type
        const output = sourceDefinition.outputs[outputName];
        if (!output) {
          problems.push({
            ...at,
            code: "missing_link_output",
            message: `links to output ${quoted(outputName)} of node "${sourceId}" (${source.type}), which has outputs: ${
              Object.keys(sourceDefinition.outputs).join(", ") || "none"
            }`,
          });
          continue;
        }
        if (!socketAccepts(spec.type, output.type)) {
          problems.push({
            ...at,
            code: "type_mismatch",
            message: `expects ${spec.type} but is linked to ${output.type} output ${quoted(outputName)} of node "${sourceId}"`,
          });
        }
        continue;
      }
      const literalProblem = checkLiteral(spec, value);
      if (literalProblem) {
        problems.push({ ...at, ...literalProblem });
        literalsOk = false;
      }
    }
    // The node's own checks assume literals of the right types and ranges: only when the schema found them so.
    if (definition.check && literalsOk) problems.push(...nodeCheckProblems(node, definition, { files: options.files }));
  }

  const { cycles, total: cycleCount } = findCycles(workflow, MAX_LISTED_PROBLEMS);
  for (const cycle of cycles) {
    problems.push({ code: "cycle", nodeId: cycle[0], message: `links form a cycle: ${describeCycle(cycle)}` });
  }

  if (options.requireOutputNode && problems.length === 0) {
    const hasOutput = workflow.nodes.some((node) => registry.get(node.type)?.isOutput);
    if (!hasOutput) {
      problems.push({
        code: "no_output_node",
        message: "the workflow has no output node (SaveImage, PreviewImage, …): nothing would run",
      });
    }
  }
  return problems.length ? { ok: false, problems: capProblems(problems, cycleCount - cycles.length) } : { ok: true, workflow };
}

function checkLiteral(spec: InputSpec, value: WorkflowLiteral): Omit<WorkflowProblem, "nodeId" | "input"> | undefined {
  // Before the MODEL socket, Inpaint's model was a text naming a model folder; such workflows keep running.
  if (spec.type === "MODEL" && typeof value === "string") {
    return value === "" || /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/.test(value)
      ? undefined
      : { code: "invalid_value", message: `must be linked to a MODEL output (Load Checkpoint), or name a model folder in the models folder (letters, digits, . _ -), got ${quoted(value)}` };
  }
  if (!LITERAL_SOCKET_TYPES.has(spec.type)) {
    return { code: "invalid_value", message: `must be linked to an output of type ${spec.type}, not given a literal value` };
  }
  switch (spec.type) {
    case "INT":
    case "FLOAT": {
      if (typeof value !== "number" || !Number.isFinite(value)) {
        return { code: "invalid_value", message: `must be a ${spec.type === "INT" ? "whole number" : "number"}, got ${quoted(value)}` };
      }
      if (spec.type === "INT" && !Number.isInteger(value)) {
        return { code: "invalid_value", message: `must be a whole number, got ${value}` };
      }
      return checkRange(spec, value);
    }
    case "STRING": {
      if (typeof value !== "string") return { code: "invalid_value", message: `must be text, got ${quoted(value)}` };
      if (spec.options && !spec.options.includes(value)) {
        return {
          code: "not_in_options",
          message: `${quoted(value)} is not allowed; allowed values: ${spec.options.map((o) => JSON.stringify(o)).join(", ")}`,
        };
      }
      return undefined;
    }
    case "BOOLEAN":
      return typeof value === "boolean" ? undefined : { code: "invalid_value", message: `must be true or false, got ${quoted(value)}` };
    case "SEED":
      return parseSeedLiteral(value) === undefined
        ? {
            code: "invalid_value",
            message: `must be -1 (random) or a whole number from 0 to ${MAX_SEED} (as a string above 2^53), got ${quoted(value)}`,
          }
        : undefined;
    default:
      return undefined;
  }
}

function checkRange(spec: InputSpec, value: number): Omit<WorkflowProblem, "nodeId" | "input"> | undefined {
  const low = spec.min ?? -Infinity;
  const high = spec.max ?? Infinity;
  if (value < low || value > high) {
    return { code: "out_of_range", message: `${value} is out of range: allowed ${low} to ${high}` };
  }
  return undefined;
}

/**
 * A seed literal as a bigint: -1 (random) or 0 … 2^64 − 1. Numbers past 2^53 cannot be exact in JSON,
 * so those must come as decimal strings.
 */
export function parseSeedLiteral(value: WorkflowLiteral | bigint): bigint | undefined {
  if (typeof value === "bigint") return value === -1n || (value >= 0n && value <= MAX_SEED) ? value : undefined;
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) return undefined;
    return value === -1 || value >= 0 ? BigInt(value) : undefined;
  }
  if (typeof value === "string" && /^(-1|\d{1,20})$/.test(value.trim())) {
    const seed = BigInt(value.trim());
    return seed <= MAX_SEED ? seed : undefined;
  }
  return undefined;
}

function nodeCheckProblems(node: WorkflowNode, definition: AnyNodeDefinition, ctx: CheckContext): WorkflowProblem[] {
  const literals: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(definition.inputs)) {
    const value = node.inputs[name];
    if (isLink(value)) continue;
    const literal = value ?? spec.default;
    literals[name] = spec.type === "SEED" && literal !== undefined ? parseSeedLiteral(literal) : literal;
  }
  return (definition.check?.(literals, ctx) ?? []).map((problem) => ({
    code: "input_check" as const,
    nodeId: node.id,
    input: problem.input,
    message: problem.message,
  }));
}

/** A value as JSON, cut short: a problem quotes what it is about, never a megabyte of it. */
function quoted(value: unknown): string {
  return clipped(JSON.stringify(value) ?? String(value));
}

function clipped(text: string, limit = 100): string {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}… (${text.length.toLocaleString("en-US")} characters)`;
}

/** "a → b → c → a", with the middle of a long cycle left out so that one problem stays one line. */
function describeCycle(cycle: readonly string[]): string {
  const shown = cycle.length <= 12 ? [...cycle, cycle[0]] : [...cycle.slice(0, 6), `… (${cycle.length - 9} more) …`, ...cycle.slice(-3), cycle[0]];
  return shown.join(" → ");
}

function documentProblem(raw: unknown, path: readonly PropertyKey[], message: string): WorkflowProblem {
  // Point at the node (by its id when it has one) and input the zod issue is about.
  let nodeId: string | undefined;
  let input: string | undefined;
  if (path[0] === "nodes" && typeof path[1] === "number") {
    const nodes = (raw as { nodes?: unknown[] } | null)?.nodes;
    const node = Array.isArray(nodes) ? (nodes[path[1]] as { id?: unknown } | undefined) : undefined;
    nodeId = typeof node?.id === "string" ? node.id : `#${path[1]}`;
    if (path[2] === "inputs" && path[3] !== undefined) input = clipped(String(path[3]));
  }
  const field = path.length ? path.map(String).join(".") : "workflow";
  return { code: "invalid_document", nodeId, input, message: clipped(`${clipped(field)}: ${message}`, 500) };
}
