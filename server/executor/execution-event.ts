import type { ImageRef } from "../../nodes/node-definition.ts";
import type { RgbImage } from "../../nodes/socket-types.ts";
import type { WorkflowProblem } from "../workflow/workflow-problem.ts";

/** What a node left for the user: pictures to show and values to record (e.g. the seed -1 became). */
export interface NodeOutputRecord {
  readonly images: readonly ImageRef[];
  readonly values: Readonly<Record<string, string | number | boolean>>;
}

/**
 * Events of one job, in the order a client sees them over the WebSocket (ComfyUI's names):
 * execution_start, execution_cached, then per node executing → progress* → executed, and one of
 * execution_success, execution_error or execution_interrupted last.
 */
export type ExecutionEvent =
  | { readonly type: "execution_start"; readonly jobId: string }
  | { readonly type: "execution_cached"; readonly jobId: string; readonly nodes: readonly string[] }
  | { readonly type: "executing"; readonly jobId: string; readonly node: string }
  | {
      readonly type: "progress";
      readonly jobId: string;
      readonly node: string;
      readonly value: number;
      readonly max: number;
      readonly label?: string;
    }
  | { readonly type: "preview"; readonly jobId: string; readonly node: string; readonly image: RgbImage }
  | { readonly type: "executed"; readonly jobId: string; readonly node: string; readonly output: NodeOutputRecord }
  | {
      readonly type: "execution_error";
      readonly jobId: string;
      readonly node?: string;
      readonly nodeType?: string;
      readonly message: string;
      readonly problems?: readonly WorkflowProblem[];
    }
  | { readonly type: "execution_interrupted"; readonly jobId: string; readonly node?: string }
  | { readonly type: "execution_success"; readonly jobId: string };

export type ExecutionEventListener = (event: ExecutionEvent) => void;
