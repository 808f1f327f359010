import { type Response, Router } from "express";
import { z } from "zod";
import type { JobQueuePort, QueuedJob } from "../../queue/job-queue-port.ts";
import type { HistoryStore } from "../../storage/history-store.ts";
import { HttpError } from "../http-error.ts";
import { parseBody } from "../request-body.ts";

const promptBody = z.strictObject({
  workflow: z.unknown().refine((value) => value !== undefined, { message: "workflow is required" }),
  clientId: z.string().min(1).max(128).optional(),
  priority: z.number().int().min(-100).max(100).optional(),
});

const queueBody = z.strictObject({
  delete: z.array(z.string()).optional(),
  clear: z.boolean().optional(),
});

const interruptBody = z.strictObject({ id: z.string().optional() }).optional();

const historyBody = z.strictObject({
  delete: z.array(z.string()).optional(),
  clear: z.boolean().optional(),
});

/** ComfyUI's names for a page of history: newest first, `max_items` of them after skipping `offset`. */
const MAX_HISTORY_PAGE = 1000;
const wholeNumber = (field: string, min: number, max: number, fallback: number) =>
  z
    .string({ error: `${field} must be given once, as a whole number from ${min} to ${max}` })
    .regex(/^\d{1,16}$/, `${field} must be a whole number from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().min(min, `${field} must be from ${min} to ${max}`).max(max, `${field} must be from ${min} to ${max}`))
    .optional()
    .transform((value) => value ?? fallback);
const historyQuery = z.object({
  max_items: wholeNumber("max_items", 1, MAX_HISTORY_PAGE, 100),
  offset: wholeNumber("offset", 0, Number.MAX_SAFE_INTEGER, 0),
});

function describeJob(job: QueuedJob) {
  return { id: job.id, clientId: job.clientId ?? null, priority: job.priority, createdAt: job.createdAt, workflow: job.workflow, ...(job.batch ? { batch: job.batch } : {}) };
}

/** `callerOf`: who a request is (its API key, else its address), for the per-client limit of a job without a clientId. */
export function jobsRoutes(queue: JobQueuePort, history: HistoryStore, callerOf: (res: Response) => string): Router {
  return Router()
    .post("/prompt", async (req, res) => {
      const body = parseBody(promptBody, req.body);
      // Leaving clientId out must not leave the per-client limit behind too.
      const limitKey = body.clientId ?? callerOf(res);
      const { id, position } = await queue.enqueue(body.workflow, { clientId: body.clientId, priority: body.priority, limitKey });
      res.json({ id, position });
    })
    .get("/queue", async (_req, res) => {
      const { running, pending } = await queue.snapshot();
      res.json({ running: running.map(describeJob), pending: pending.map(describeJob) });
    })
    .post("/queue", async (req, res) => {
      const body = parseBody(queueBody, req.body ?? {});
      const deleted = body.delete ? await queue.cancel(body.delete) : [];
      const cleared = body.clear ? await queue.clearPending() : 0;
      res.json({ deleted, cleared });
    })
    .post("/interrupt", async (req, res) => {
      const body = parseBody(interruptBody, req.body && Object.keys(req.body).length ? req.body : undefined);
      res.json({ interrupted: await queue.interrupt(body?.id) });
    })
    .get("/history", async (req, res) => {
      const query = parseBody(historyQuery, { max_items: req.query.max_items, offset: req.query.offset }, "query");
      const page = await history.page(query.offset, query.max_items);
      res.setHeader("X-Total-Count", String(page.total));
      res.json(page.entries);
    })
    .get("/history/:id", async (req, res) => {
      const entry = await history.read(req.params.id);
      if (!entry) throw new HttpError(404, "job_not_found", `no finished job with id "${req.params.id}"`, { id: req.params.id });
      res.json(entry);
    })
    .post("/history", async (req, res) => {
      const body = parseBody(historyBody, req.body ?? {});
      if (body.clear) await history.clear();
      else if (body.delete) await history.delete(body.delete);
      res.json({ ok: true });
    });
}
