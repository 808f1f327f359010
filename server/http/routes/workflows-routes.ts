import { Router } from "express";
import type { NodeRegistry } from "../../../nodes/registry.ts";
import type { WorkflowLibrary } from "../../storage/workflow-library.ts";
import { validateWorkflow } from "../../workflow/validate-workflow.ts";
import { workflowSchema } from "../../workflow/workflow-document.ts";
import { parseBody } from "../request-body.ts";

export function workflowsRoutes(library: WorkflowLibrary, registry: NodeRegistry): Router {
  return Router()
    .get("/workflows", async (_req, res) => {
      res.json(await library.list());
    })
    .get("/workflows/:name", async (req, res) => {
      const { document } = await library.read(req.params.name);
      res.json(document);
    })
    .put("/workflows/:name", async (req, res) => {
      // The document's shape must be right to save; an unfinished graph (a missing link) may still be saved.
      const document = parseBody(workflowSchema, req.body, "workflow");
      await library.write(req.params.name, document);
      const validation = validateWorkflow(document, registry);
      res.json({ name: req.params.name, saved: true, problems: validation.ok ? [] : validation.problems });
    })
    .delete("/workflows/:name", async (req, res) => {
      await library.delete(req.params.name);
      res.json({ name: req.params.name, deleted: true });
    });
}
