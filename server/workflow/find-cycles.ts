import { isLink, type WorkflowDocument } from "./workflow-document.ts";

/**
 * Every cycle found by a depth-first search with colours, as the node ids along it (each back link
 * once). The search keeps its own stack, so a chain of any length cannot overflow the call stack.
 * Only the first `maxListed` cycles are spelled out (each can be as long as the workflow); the
 * others are counted in `total`.
 */
export function findCycles(workflow: WorkflowDocument, maxListed = Infinity): { cycles: string[][]; total: number } {
  const edges = new Map<string, string[]>();
  const ids = new Set(workflow.nodes.map((n) => n.id));
  for (const node of workflow.nodes) {
    const sources = Object.values(node.inputs)
      .filter(isLink)
      .map(([source]) => source)
      .filter((source) => ids.has(source));
    edges.set(node.id, sources);
  }
  const state = new Map<string, "visiting" | "done">();
  const cycles: string[][] = [];
  let total = 0;
  // path[i] is a node being visited and next[i] the index of its next link to follow.
  const path: string[] = [];
  const next: number[] = [];
  const onPath = new Map<string, number>();
  for (const start of ids) {
    if (state.has(start)) continue;
    state.set(start, "visiting");
    onPath.set(start, 0);
    path.push(start);
    next.push(0);
    while (path.length > 0) {
      const top = path.length - 1;
      const id = path[top];
      const links = edges.get(id) ?? [];
      if (next[top] < links.length) {
        const target = links[next[top]++];
        const seen = state.get(target);
        if (seen === "visiting") {
          total++;
          if (cycles.length < maxListed) cycles.push(path.slice(onPath.get(target)).reverse());
        } else if (seen === undefined) {
          state.set(target, "visiting");
          onPath.set(target, path.length);
          path.push(target);
          next.push(0);
        }
        continue;
      }
      path.pop();
      next.pop();
      onPath.delete(id);
      state.set(id, "done");
    }
  }
  return { cycles, total };
}
