/**
 * POST /api/prompt/batch: one workflow queued once per picture of uploaded folders, as `maskflow run --batch`
 * does on the command line. The folders are subfolders of the server's input folder (uploaded with the
 * `subfolder` field of /api/upload), paired by file name; every job is queued, or none.
 *
 * What a caller could try, and what stops it: a folder name that leaves input/ (`..`, absolute, odd
 * characters: the upload's own subfolder rules), a symbolic link planted inside it (the folder's real path
 * must lie in input/, and no entry may be a link), a folder of millions of files (at most
 * MAX_FOLDER_ENTRIES are read), a batch of thousands of jobs (MAX_BATCH_JOBS, and never more than the queue
 * holds), and a large workflow times many jobs (MAX_BATCH_CHARACTERS in all, so validation and history stay
 * bounded).
 */
import { randomUUID } from "node:crypto";
import { setImmediate as nextTurn } from "node:timers/promises";
import path from "node:path";
import { type Response, Router } from "express";
import { z } from "zod";
import type { NodeRegistry } from "../../../nodes/registry.ts";
import { type BatchTarget, batchTargetProblems, parseTargetKey, workflowForItem } from "../../batch/batch-target.ts";
import { BatchFolderError, listFolderPictures } from "../../batch/folder-pictures.ts";
import { pairByStem } from "../../batch/pair-by-stem.ts";
import type { JobQueuePort } from "../../queue/job-queue-port.ts";
import type { DataFolders } from "../../storage/data-folders.ts";
import { uploadSubfolder } from "../../storage/upload-names.ts";
import { validateWorkflow } from "../../workflow/validate-workflow.ts";
import { MAX_WORKFLOW_CHARACTERS } from "../../workflow/workflow-limits.ts";
import { WorkflowInvalidError, type WorkflowProblem } from "../../workflow/workflow-problem.ts";
import { HttpError } from "../http-error.ts";
import { parseBody } from "../request-body.ts";

/** Jobs one batch may queue (the queue's own limit applies too). */
export const MAX_BATCH_JOBS = 100;
/** Entries of one folder read at most. */
export const MAX_FOLDER_ENTRIES = 1_000;
/** Folders of one batch (a picture, a mask, a reference…). */
export const MAX_BATCH_FOLDERS = 4;
/**
 * The workflow's JSON length times the jobs: each job holds, validates and records its own copy. As much as one
 * workflow may hold at most (MAX_WORKFLOW_CHARACTERS), so a batch costs no more than the largest single prompt.
 */
export const MAX_BATCH_CHARACTERS = MAX_WORKFLOW_CHARACTERS;
/** Unmatched pictures listed in a 400; the rest are counted. */
const MAX_LISTED_UNMATCHED = 50;

const batchBody = z.strictObject({
  workflow: z.unknown().refine((value) => value !== undefined, { message: "workflow is required" }),
  inputs: z
    .record(z.string().max(200), z.string().min(1, "names an input subfolder, e.g. \"photos\"").max(200))
    .refine((inputs) => Object.keys(inputs).length >= 1 && Object.keys(inputs).length <= MAX_BATCH_FOLDERS, {
      message: `gives 1 to ${MAX_BATCH_FOLDERS} inputs, each NODE.INPUT: subfolder of the input folder, e.g. {"1.image": "photos", "2.image": "masks"}`,
    }),
  clientId: z.string().min(1).max(128).optional(),
  priority: z.number().int().min(-100).max(100).optional(),
});

export function batchRoutes(queue: JobQueuePort, registry: NodeRegistry, folders: DataFolders, callerOf: (res: Response) => string): Router {
  return Router().post("/prompt/batch", async (req, res) => {
    const body = parseBody(batchBody, req.body);
    const targets: BatchTarget[] = [];
    for (const key of Object.keys(body.inputs)) {
      try {
        targets.push(parseTargetKey(key, "inputs"));
      } catch (error) {
        throw new HttpError(400, "invalid_batch_input", (error as Error).message, { field: `inputs.${key}` });
      }
    }
    const targetProblems = batchTargetProblems(targets, body.workflow, registry, "inputs");
    if (targetProblems.length) throw new HttpError(400, "invalid_batch_input", targetProblems.join("; "), { problems: targetProblems });
    // The workflow's own problems, every node and input named as POST /api/prompt names them; the batched
    // inputs are left out (the editor leaves them empty, the batch fills them in).
    const validation = validateWorkflow(body.workflow, registry, { requireOutputNode: true });
    const isTarget = (problem: WorkflowProblem) => targets.some((t) => t.nodeId === problem.nodeId && t.input === problem.input);
    const general = validation.ok ? [] : validation.problems.filter((problem) => !isTarget(problem));
    if (general.length) throw new WorkflowInvalidError(general);

    const listed = [];
    for (const target of targets) {
      const field = `inputs.${target.key}`;
      let subfolder: string;
      try {
        subfolder = uploadSubfolder(body.inputs[target.key], []);
      } catch (error) {
        if (error instanceof HttpError) throw new HttpError(400, error.code, `${field}: ${error.message}`, { field });
        throw error;
      }
      if (!subfolder) throw new HttpError(400, "invalid_batch_folder", `${field} names no subfolder; give one of the input folder's subfolders`, { field });
      try {
        const listing = await listFolderPictures(path.join(folders.input, ...subfolder.split("/")), {
          label: subfolder,
          maxEntries: MAX_FOLDER_ENTRIES,
          confineTo: folders.input,
        });
        listed.push({ key: target.key, label: subfolder, subfolder, pictures: listing.pictures });
      } catch (error) {
        if (error instanceof BatchFolderError) throw new HttpError(400, "invalid_batch_folder", `${field}: input folder ${error.message}`, { field });
        throw error;
      }
    }
    const { items, unmatched } = pairByStem(listed);
    if (unmatched.length) {
      const listedUnmatched = unmatched.slice(0, MAX_LISTED_UNMATCHED);
      const more = unmatched.length - listedUnmatched.length;
      throw new HttpError(
        400,
        "unmatched_pictures",
        `${unmatched.length} picture name${unmatched.length === 1 ? " has" : "s have"} no partner in every folder, so nothing was queued: ` +
          listedUnmatched.map((u) => u.reason).join("; ") +
          (more ? `; and ${more} more` : ""),
        { unmatched: listedUnmatched.map((u) => ({ name: u.stem, reason: u.reason })), more },
      );
    }
    if (!items.length) {
      throw new HttpError(400, "empty_batch", `no pictures in ${listed.map((f) => f.label).join(" or ")}: upload some with /api/upload and this subfolder`, {
        inputs: body.inputs,
      });
    }
    if (items.length > MAX_BATCH_JOBS) {
      throw new HttpError(400, "batch_too_large", `the folders hold ${items.length} pictures; a batch queues at most ${MAX_BATCH_JOBS}: split them into smaller folders`, {
        count: items.length,
        limit: MAX_BATCH_JOBS,
      });
    }
    const characters = JSON.stringify(body.workflow).length;
    if (characters * items.length > MAX_BATCH_CHARACTERS) {
      throw new HttpError(
        400,
        "batch_too_large",
        `${items.length} copies of a workflow of ${characters.toLocaleString("en-US")} characters pass the batch limit of ${MAX_BATCH_CHARACTERS.toLocaleString("en-US")}; queue fewer pictures at once`,
        { count: items.length, characters, limit: MAX_BATCH_CHARACTERS },
      );
    }

    const batchId = randomUUID();
    const subfolders = new Map(listed.map((folder) => [folder.key, folder.subfolder]));
    // Names inside the input folder, as LoadImage reads them: photos/cat.png.
    const files = items.map((item) => Object.fromEntries(Object.entries(item.files).map(([key, picture]) => [key, `${subfolders.get(key)}/${picture.name}`])));
    const jobs = [];
    for (const [index, item] of items.entries()) {
      jobs.push({
        workflow: workflowForItem(body.workflow, targets, { stem: item.stem, files: files[index] }, registry),
        batch: { id: batchId, index, count: items.length, name: item.stem },
      });
      // Each copy is a structured clone of the workflow: one a turn, so other requests are answered meanwhile.
      await nextTurn();
    }
    const limitKey = body.clientId ?? callerOf(res);
    const queued = await queue.enqueueBatch(jobs, { clientId: body.clientId, priority: body.priority, limitKey });
    res.json({
      batch: { id: batchId, count: jobs.length },
      jobs: queued.map((job, index) => ({ id: job.id, position: job.position, name: items[index].stem, inputs: files[index] })),
    });
  });
}
