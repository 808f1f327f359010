/**
 * Which nodes of a workflow will fail for want of an engine the server told us it lacks, known
 * before anything is queued: today, a node on backend "local" with no model folder of its own while
 * the server has no local model (GET /api/system, engines.local.installed).
 */
import type { SystemInfo, WorkflowDocument } from "../api/maskflow-api.ts";

export interface EngineShortfall {
  readonly nodeId: string;
  /** What the user sees on the node. */
  readonly message: string;
}

/** The one line the toolbar shows while the graph has such a node. */
export const NO_LOCAL_MODEL_TOOLBAR = "No local model: Inpaint (local) will fail — `maskflow models pull`";
/** The same, when the Download model button beside it offers the pull (the command is on its tooltip). */
export const NO_LOCAL_MODEL_TOOLBAR_WITH_DOWNLOAD = "No local model: Inpaint (local) will fail";

/**
 * Nodes that need the server's own local model when it has none. A node naming its own model folder
 * is left alone (the server may well have that folder), and so is a server that reports no engines.
 */
export function engineShortfalls(workflow: WorkflowDocument, system: SystemInfo | undefined): EngineShortfall[] {
  const local = system?.engines?.local;
  if (!local || local.installed !== false) return [];
  const where = local.defaultModelDir ? ` at ${local.defaultModelDir}` : "";
  return workflow.nodes
    .filter((node) => node.inputs?.backend === "local" && (node.inputs.model ?? "") === "")
    .map((node) => ({
      nodeId: node.id,
      message:
        `No local model on the server${where}: this node will fail. ` +
        "Run `maskflow models pull` or click Download model in the toolbar (or set MASKFLOW_MODEL_DIR), or switch backend to segmind.",
    }));
}

/** What GET /api/system says of the helper models (`maskflow serve` reports it; an embedded server may not). */
interface HelperModelsInfo {
  readonly models?: readonly { readonly name: string; readonly title: string; readonly installed: boolean; readonly pullCommand: string }[];
}

/** The helper model each node type runs when its `model` input is empty. */
const HELPER_OF_NODE: Readonly<Record<string, string>> = { SegmentAnything: "mobile-sam", LearnedFill: "lama" };

/** Nodes that will run a helper model the server does not have (their own `model` folder left empty). */
export function helperModelShortfalls(workflow: WorkflowDocument, system: SystemInfo | undefined): EngineShortfall[] {
  const helpers = (system?.engines as { helpers?: HelperModelsInfo } | undefined)?.helpers?.models;
  if (!helpers) return [];
  return workflow.nodes.flatMap((node) => {
    const helper = helpers.find((model) => model.name === HELPER_OF_NODE[node.type]);
    if (!helper || helper.installed || (node.inputs?.model ?? "") !== "") return [];
    return [{ nodeId: node.id, message: `${helper.title} is not installed on the server: this node will fail. Run \`${helper.pullCommand}\`.` }];
  });
}
