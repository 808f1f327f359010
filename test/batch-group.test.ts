import { describe, expect, it } from "vitest";
import type { HistoryEntry, JobSummary } from "../client/src/api/maskflow-api.ts";
import { batchGroups, renderBatchGroup } from "../client/src/ui/batch-group.ts";

const workflow = { format: "maskflow-workflow", version: 1, nodes: [] } as unknown as JobSummary["workflow"];
const batch = (index: number, name: string, id = "B") => ({ id, index, count: 5, name });
const job = (id: string, index: number, name: string, batchId = "B"): JobSummary => ({ id, clientId: null, createdAt: "2026-12-01T10:00:00Z", workflow, batch: batch(index, name, batchId) });
const finished = (id: string, index: number, name: string, status: string, error?: string): HistoryEntry => ({
  id,
  status,
  workflow,
  createdAt: "2026-12-01T10:00:00Z",
  finishedAt: "2026-12-01T10:00:05Z",
  durationMs: 1500,
  outputs: status === "success" ? { "4": { images: [{ filename: `x_${name}.png`, subfolder: "", type: "output" }], values: {} } } : {},
  ...(error ? { error: { message: error } } : {}),
  batch: batch(index, name),
});

describe("the queue panel's batch group", () => {
  it("gathers a batch from the running job, the waiting ones and history, and counts its progress", () => {
    const loose = { ...job("solo", 0, "x"), batch: undefined };
    const groups = batchGroups(
      [job("j2", 2, "c")],
      [job("j3", 3, "d"), loose, job("j4", 4, "e<script>")],
      [finished("j1", 1, "b", "error", "node 1 (LoadImage): <bad> picture"), finished("j0", 0, "a", "success"), finished("old", 0, "z", "success")].map((entry, i) =>
        i === 2 ? { ...entry, batch: { id: "OLD", index: 0, count: 1, name: "z" }, createdAt: "2026-11-30T10:00:00Z" } : entry,
      ),
    );
    // The batch with work left first, then the older finished one; the loose job is in neither.
    expect(groups.map((group) => [group.id, group.running.length, group.pending.length, group.finished.length])).toEqual([
      ["B", 1, 2, 2],
      ["OLD", 0, 0, 1],
    ]);
    const html = renderBatchGroup(groups[0], false);
    expect(html).toContain("Batch of 5 · 1/5 done, 1 failed, 1 running, 2 waiting");
    expect(html).toContain('<progress max="5" value="2">');
    expect(html).toContain('data-do="cancel-batch"');
    expect(html).not.toContain(" open>");
    // Rows in the batch's order, names and errors escaped.
    const names = [...html.matchAll(/<span>(?:✓|✗|▶|·) ([^ <]+)/g)].map((m) => m[1]);
    expect(names).toEqual(["a", "b", "c", "d", "e&#60;script&#62;"]);
    expect(html).toContain("node 1 (LoadImage): &#60;bad&#62; picture");
    expect(html).not.toContain("<script>");

    const done = renderBatchGroup(groups[1], true);
    expect(done).toContain("Batch of 1 · 1/1 done");
    expect(done).not.toContain("cancel-batch");
    expect(done).toContain(" open>");
  });

  it("counts jobs it cannot list (past the history page, or cancelled) without inventing their outcome", () => {
    const [group] = batchGroups([], [job("j4", 4, "e")], [finished("j3", 3, "d", "success")]);
    const html = renderBatchGroup(group, true);
    expect(html).toContain("Batch of 5 · 4/5 ended, 1 waiting");
    expect(html).toContain("3 more not listed (older history, or cancelled)");
    expect(html).toContain('value="4"');
  });
});
