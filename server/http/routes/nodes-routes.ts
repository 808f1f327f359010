import { Router } from "express";
import type { NodeRegistry } from "../../../nodes/registry.ts";

export function nodesRoutes(registry: NodeRegistry): Router {
  return Router().get("/nodes", (_req, res) => {
    res.json(registry.schemas());
  });
}
