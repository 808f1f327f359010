import { Router } from "express";
import { z } from "zod";
import type { SettingsStore } from "../../storage/settings-store.ts";
import { parseBody } from "../request-body.ts";

const settingsBody = z.strictObject({
  segmindApiKey: z.union([z.string().max(512), z.null()]).optional(),
});

/** GET never returns a key, only whether one is set and where from. */
export function settingsRoutes(settings: SettingsStore): Router {
  const describe = () => ({
    segmindApiKey: settings.segmindApiKey ? "settings" : process.env.SEGMIND_API_KEY ? "environment" : "none",
  });
  return Router()
    .get("/settings", (_req, res) => {
      res.json(describe());
    })
    .put("/settings", async (req, res) => {
      const body = parseBody(settingsBody, req.body ?? {}, "settings");
      await settings.update(body);
      res.json(describe());
    });
}
