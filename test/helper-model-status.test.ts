import { cp, mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { SystemInfo, WorkflowDocument } from "../client/src/api/maskflow-api.ts";
import { helperModelShortfalls } from "../client/src/editor/engine-check.ts";
import { createEngines } from "../server/engines/create-engines.ts";
import { ensureTinyHelperModels } from "./fixtures/make-tiny-helper-models.ts";

describe("which helper models the server has", () => {
  it("GET /api/system's engines say it, and the editor marks the nodes that would run a missing one", async () => {
    const modelsDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-helper-status-"));
    await cp((await ensureTinyHelperModels()).samAcly, path.join(modelsDir, "mobile-sam"), { recursive: true });
    const engines = await createEngines({ modelsDir, modelDir: path.join(modelsDir, "sd") });
    try {
      const status = engines.status();
      expect(status.helpers).toMatchObject({
        models: [
          { name: "mobile-sam", installed: true },
          { name: "lama", installed: false, pullCommand: "npx maskflow models pull lama" },
        ],
      });
      expect(status.helpers.summary).toBe(`helper models in ${modelsDir}: mobile-sam installed, lama not installed (\`npx maskflow models pull lama\`)`);

      const workflow: WorkflowDocument = {
        format: "maskflow-workflow",
        version: 1,
        nodes: [
          { id: "1", type: "SegmentAnything", inputs: { model: "" } },
          { id: "2", type: "LearnedFill", inputs: { model: "" } },
          { id: "3", type: "LearnedFill", inputs: { model: "/elsewhere/lama" } },
        ],
      } as unknown as WorkflowDocument;
      const system = { name: "maskflow", version: "0", engines: status } as unknown as SystemInfo;
      expect(helperModelShortfalls(workflow, system)).toEqual([
        { nodeId: "2", message: "LaMa (learned object removal) is not installed on the server: this node will fail. Run `npx maskflow models pull lama`." },
      ]);
      expect(helperModelShortfalls(workflow, { name: "maskflow", version: "0", engines: {} })).toEqual([]);
    } finally {
      await engines.dispose();
    }
  });
});
