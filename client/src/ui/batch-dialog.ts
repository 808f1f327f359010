/**
 * "Batch…": the graph queued once per picture, as `maskflow run --batch` does. For each picture input of the
 * graph (Load Image, Load Mask) the user picks a folder already in the server's input folder, or uploads
 * pictures into a new one, or leaves it on its one picture. Pictures of several inputs pair by file name.
 */
import { ApiError, api, type NodeSchema, type QueuedBatch, type WorkflowDocument, type WorkflowProblem } from "../api/maskflow-api.ts";
import { escapeHtml } from "./escape-html.ts";
import { notify } from "./notices.ts";

/** What the dialog needs of the editor. */
export interface BatchHost {
  readonly clientId: string;
  readonly byType: ReadonlyMap<string, NodeSchema>;
  toDocument(): WorkflowDocument;
  nodeByDocumentId(id: string): { title?: string } | undefined;
  markProblems(problems: readonly WorkflowProblem[]): void;
  readonly queuePanel: { toggle(open?: boolean): void; refresh(): Promise<void> };
  readonly batchNotices: { track(queued: QueuedBatch): void };
}

const KEEP = "";
/** No folder is named so: a subfolder name holds no "*". */
const UPLOAD = "*upload*";

/** The graph's inputs that name a picture file: NODE.INPUT and what to call it. */
function pictureInputs(host: BatchHost, document: WorkflowDocument): Array<{ key: string; label: string }> {
  return document.nodes.flatMap((node) =>
    Object.entries(host.byType.get(node.type)?.inputs ?? {})
      .filter(([, spec]) => spec.widget === "image")
      .map(([input]) => ({ key: `${node.id}.${input}`, label: `${host.nodeByDocumentId(node.id)?.title ?? node.type} (node ${node.id}) · ${input}` })),
  );
}

/** Folders that hold pictures, from the input folder's list (photos/cat.png → photos). */
function pictureFolders(files: readonly string[]): string[] {
  const folders = new Set<string>();
  for (const file of files) {
    const parts = file.split("/");
    for (let depth = 1; depth < parts.length; depth++) folders.add(parts.slice(0, depth).join("/"));
  }
  return [...folders].sort();
}

export async function openBatchDialog(host: BatchHost): Promise<void> {
  document.querySelector("#batch-dialog")?.remove();
  const workflow = host.toDocument();
  const inputs = pictureInputs(host, workflow);
  if (!inputs.length) {
    notify("A batch needs a Load Image or Load Mask node: its picture is what changes from job to job", "error", 6000);
    return;
  }
  const folders = pictureFolders(await api.inputFiles().catch(() => []));
  const dialog = document.createElement("dialog");
  dialog.id = "batch-dialog";
  dialog.className = "mf-batch-dialog";
  const options = [
    `<option value="${KEEP}">its one picture (not batched)</option>`,
    ...folders.map((folder) => `<option value="${escapeHtml(folder)}">folder ${escapeHtml(folder)}/</option>`),
    `<option value="${UPLOAD}">upload pictures…</option>`,
  ].join("");
  dialog.innerHTML = `<form method="dialog">
    <h2>Queue a batch</h2>
    <p>The graph runs once per picture. Pictures of several inputs go together by file name (photos/cat.jpg with masks/cat.png).</p>
    ${inputs
      .map(
        (input) => `<label class="mf-batch-input" data-key="${escapeHtml(input.key)}"><span>${escapeHtml(input.label)}</span>
          <select>${options}</select><input type="file" accept="image/png,image/jpeg,image/webp,image/gif" multiple hidden></label>`,
      )
      .join("")}
    <p class="mf-batch-status" role="status"></p>
    <div class="mf-batch-buttons"><button value="cancel" formnovalidate>Cancel</button><button class="mf-primary" data-do="queue-batch" value="queue">Queue batch</button></div>
  </form>`;
  document.body.append(dialog);
  const status = dialog.querySelector<HTMLElement>(".mf-batch-status")!;
  for (const row of dialog.querySelectorAll<HTMLElement>(".mf-batch-input")) {
    const select = row.querySelector("select")!;
    const files = row.querySelector<HTMLInputElement>("input[type=file]")!;
    // A file picker opens only from the user's own click, so the choice shows one rather than opening it.
    select.addEventListener("change", () => void (files.hidden = select.value !== UPLOAD));
  }
  dialog.querySelector<HTMLButtonElement>('[data-do="queue-batch"]')!.addEventListener("click", (event) => {
    event.preventDefault();
    void submit();
  });
  dialog.addEventListener("close", () => dialog.remove());
  dialog.showModal();

  async function submit(): Promise<void> {
    const chosen: Record<string, string> = {};
    // New uploads go to a folder of their own per input, so two inputs' cat.png never meet.
    const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
    const button = dialog.querySelector<HTMLButtonElement>('[data-do="queue-batch"]')!;
    button.disabled = true;
    try {
      for (const row of dialog.querySelectorAll<HTMLElement>(".mf-batch-input")) {
        const key = row.dataset.key!;
        const value = row.querySelector("select")!.value;
        if (value === KEEP) continue;
        if (value !== UPLOAD) {
          chosen[key] = value;
          continue;
        }
        const files = [...(row.querySelector<HTMLInputElement>("input[type=file]")!.files ?? [])];
        if (!files.length) throw new Error(`choose the pictures to upload for ${key}`);
        const subfolder = `batch-${stamp}/${key.replace(/[^A-Za-z0-9_-]/g, "-")}`;
        for (const [i, file] of files.entries()) {
          status.textContent = `Uploading for ${key}: ${i + 1} of ${files.length}…`;
          await api.upload(file, file.name, { subfolder });
        }
        chosen[key] = subfolder;
      }
      if (!Object.keys(chosen).length) throw new Error("choose a folder or pictures for at least one input");
      status.textContent = "Queueing…";
      const queued = await api.queueBatch(workflow, chosen, host.clientId);
      host.batchNotices.track(queued);
      notify(`Queued a batch of ${queued.batch.count}`, "success");
      dialog.close();
      host.queuePanel.toggle(true);
    } catch (error) {
      if (error instanceof ApiError && error.details.problems?.length) host.markProblems(error.details.problems);
      status.textContent = `Not queued: ${(error as Error).message}`;
      status.classList.add("mf-batch-error");
    } finally {
      button.disabled = false;
      void host.queuePanel.refresh();
    }
  }
}
