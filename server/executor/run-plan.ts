/**
 * Which nodes a run needs and in what order, walked with explicit stacks: a chain of any length
 * (thousands of nodes) must not overflow the call stack.
 */
import { isLink, type WorkflowDocument, type WorkflowNode } from "../workflow/workflow-document.ts";

export type IsOutputNode = (node: WorkflowNode) => boolean;

/**
 * The nodes the output nodes need, each after every node it links from, in a depth-first order that
 * follows the document's order of output nodes and of each node's inputs. Assumes no cycles (the
 * validator refuses them).
 */
export function planRun(workflow: WorkflowDocument, isOutput: IsOutputNode): WorkflowNode[] {
  const byId = new Map(workflow.nodes.map((node) => [node.id, node]));
  const ordered: WorkflowNode[] = [];
  const placed = new Set<string>();
  const path: Array<{ node: WorkflowNode; sources: WorkflowNode[]; next: number }> = [];
  const enter = (node: WorkflowNode): void => {
    placed.add(node.id);
    path.push({ node, sources: linkedSources(node, byId), next: 0 });
  };
  for (const output of workflow.nodes) {
    if (!isOutput(output) || placed.has(output.id)) continue;
    enter(output);
    while (path.length > 0) {
      const frame = path[path.length - 1];
      if (frame.next < frame.sources.length) {
        const source = frame.sources[frame.next++];
        if (!placed.has(source.id)) enter(source);
      } else {
        path.pop();
        ordered.push(frame.node);
      }
    }
  }
  return ordered;
}

/**
 * The nodes that must run: from each output node back through its links, stopping at nodes served
 * from the cache (what feeds a cached node is not needed, even when it fell out of the cache itself).
 */
export function stillNeeded(workflow: WorkflowDocument, cached: ReadonlyMap<string, unknown>, isOutput: IsOutputNode): Set<string> {
  const byId = new Map(workflow.nodes.map((node) => [node.id, node]));
  const needed = new Set<string>();
  const pending = workflow.nodes.filter(isOutput);
  while (pending.length > 0) {
    const node = pending.pop()!;
    if (cached.has(node.id) || needed.has(node.id)) continue;
    needed.add(node.id);
    for (const source of linkedSources(node, byId)) pending.push(source);
  }
  return needed;
}

/** The nodes a node's inputs link from, in the order of its inputs. */
function linkedSources(node: WorkflowNode, byId: ReadonlyMap<string, WorkflowNode>): WorkflowNode[] {
  const sources: WorkflowNode[] = [];
  for (const value of Object.values(node.inputs)) {
    if (isLink(value)) sources.push(byId.get(value[0])!);
  }
  return sources;
}
