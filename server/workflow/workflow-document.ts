/**
 * The one workflow format: a versioned JSON document that the editor saves, the executor runs,
 * the CLI reads and a PNG carries. Its shape is checked here with zod; what it means (node types,
 * sockets, ranges, cycles) is checked by validate-workflow.ts against the node registry.
 */
import { z } from "zod";
import { MAX_WORKFLOW_NODES } from "./workflow-limits.ts";

export const WORKFLOW_FORMAT = "maskflow-workflow";
export const WORKFLOW_VERSION = 1;

const nodeId = z.string().min(1, "node id must be a non-empty string").max(64);

/** `[nodeId, outputName]`: the value comes from another node's output. */
export const linkSchema = z.tuple([nodeId, z.string().min(1)]);

export const literalSchema = z.union([z.string(), z.number(), z.boolean(), z.null()]);

export const inputValueSchema = z.union([linkSchema, literalSchema]);

const position = z.tuple([z.number(), z.number()]);

/** What only the editor needs; the executor ignores it, so it is lenient about extra fields. */
export const nodeUiSchema = z
  .object({
    pos: position.optional(),
    size: position.optional(),
    color: z.string().optional(),
    bgcolor: z.string().optional(),
    title: z.string().optional(),
    collapsed: z.boolean().optional(),
  })
  .loose();

export const workflowNodeSchema = z.strictObject({
  id: nodeId,
  type: z.string().min(1, "node type must be a non-empty string"),
  inputs: z.record(z.string(), inputValueSchema).default({}),
  ui: nodeUiSchema.optional(),
});

export const workflowSchema = z.strictObject({
  format: z.literal(WORKFLOW_FORMAT, { error: `format must be "${WORKFLOW_FORMAT}"` }),
  version: z.literal(WORKFLOW_VERSION, { error: `version must be ${WORKFLOW_VERSION} (this Maskflow reads version 1)` }),
  name: z.string().optional(),
  description: z.string().optional(),
  nodes: z.array(workflowNodeSchema).max(MAX_WORKFLOW_NODES, `a workflow has at most ${MAX_WORKFLOW_NODES} nodes`),
  /** Editor state that is not a node: groups, viewport, link colours. */
  ui: z.record(z.string(), z.unknown()).optional(),
});

export type WorkflowLink = z.infer<typeof linkSchema>;
export type WorkflowLiteral = z.infer<typeof literalSchema>;
export type WorkflowInputValue = z.infer<typeof inputValueSchema>;
export type WorkflowNode = z.infer<typeof workflowNodeSchema>;
export type WorkflowDocument = z.infer<typeof workflowSchema>;

export function isLink(value: WorkflowInputValue | undefined): value is WorkflowLink {
  return Array.isArray(value);
}
