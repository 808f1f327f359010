import { Router } from "express";
import type { NodeRegistry } from "../../../nodes/registry.ts";
import type { WorkflowLibrary } from "../../storage/workflow-library.ts";
import { validateWorkflow } from "../../workflow/validate-workflow.ts";
import { workflowSizeProblems } from "../../workflow/workflow-limits.ts";
import { workflowSchema } from "../../workflow/workflow-document.ts";
import { capProblems, WorkflowInvalidError } from "../../workflow/workflow-problem.ts";
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
      // Everything is checked before the file is touched, so a refused document never replaces a saved one.
      // Too large is refused (400 invalid_workflow, the problems listed); a wrong shape too (400 invalid_request).
      const sizeProblems = workflowSizeProblems(req.body);
      if (sizeProblems.length) throw new WorkflowInvalidError(capProblems(sizeProblems));
      const document = parseBody(workflowSchema, req.body, "workflow");
      // An unfinished graph (a missing link, an unknown type, even a cycle) is saved, with its problems.
      const validation = validateWorkflow(document, registry);
      await library.write(req.params.name, document);
      res.json({ name: req.params.name, saved: true, problems: validation.ok ? [] : validation.problems });
    })
    .delete("/workflows/:name", async (req, res) => {
      await library.delete(req.params.name);
      res.json({ name: req.params.name, deleted: true });
    });
}
