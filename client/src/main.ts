/** Start-up: the editor, the toolbar, keyboard shortcuts and file drops. */
import "@comfyorg/litegraph/style.css";
import "./style.css";
import { api } from "./api/maskflow-api.ts";
import { EditorApp } from "./editor/editor-app.ts";
import { installDropTarget, openFile } from "./editor/file-drop.ts";
import { openBatchDialog } from "./ui/batch-dialog.ts";
import { notify } from "./ui/notices.ts";

const app = new EditorApp(document.querySelector<HTMLCanvasElement>("#graph-canvas")!);
// For the browser tests and for poking at the graph from the console.
(window as unknown as { maskflow: EditorApp }).maskflow = app;
installDropTarget(app);

const $ = <T extends HTMLElement>(selector: string) => document.querySelector<T>(selector)!;
const list = $<HTMLSelectElement>("#workflow-list");
const fileInput = $<HTMLInputElement>("#file-input");

async function refreshWorkflowList(): Promise<void> {
  try {
    const workflows = await api.listWorkflows();
    list.innerHTML = '<option value="">Open…</option>';
    for (const workflow of workflows) {
      const option = document.createElement("option");
      option.value = workflow.name;
      option.textContent = workflow.source === "shipped" ? `${workflow.name} (shipped)` : workflow.name;
      list.append(option);
    }
  } catch {
    // Offline: the banner says so; the list refreshes on the next click.
  }
}

async function saveWorkflow(): Promise<void> {
  const name = prompt("Save workflow as", app.workflowName || "my-workflow")?.trim();
  if (!name) return;
  const previousName = app.workflowName;
  try {
    app.setWorkflowName(name);
    const result = await api.saveWorkflow(name, app.toDocument());
    notify(result.problems.length ? `Saved "${name}" (${result.problems.length} problem(s) to fix before it runs)` : `Saved "${name}"`, "success");
    void refreshWorkflowList();
  } catch (error) {
    // The title must not claim a name the server never stored.
    app.setWorkflowName(previousName);
    notify(`Save failed: ${(error as Error).message}`, "error");
  }
}

function downloadWorkflow(): void {
  const blob = new Blob([JSON.stringify(app.toDocument(), null, 2)], { type: "application/json" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${app.workflowName || "workflow"}.json`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

list.addEventListener("focus", () => void refreshWorkflowList());
list.addEventListener("change", async () => {
  const name = list.value;
  list.value = "";
  if (!name) return;
  try {
    app.loadDocument(await api.readWorkflow(name), name);
  } catch (error) {
    notify(`Could not open "${name}": ${(error as Error).message}`, "error");
  }
});
$("#save-workflow").addEventListener("click", () => void saveWorkflow());
$("#download-workflow").addEventListener("click", downloadWorkflow);
$("#open-file").addEventListener("click", () => fileInput.click());
fileInput.addEventListener("change", () => {
  const file = fileInput.files?.[0];
  fileInput.value = "";
  if (file) void openFile(app, file);
});
$("#new-workflow").addEventListener("click", () => {
  if (confirm("Start an empty graph? The current one stays only if you saved it.")) app.newGraph();
});
$("#queue-button").addEventListener("click", () => void app.queue());
$("#segmind-key").addEventListener("click", () => void setSegmindKey());

/** The key stays on the server (DATA/settings.json); the page only says whether one is set and where from. */
async function setSegmindKey(): Promise<void> {
  try {
    const { segmindApiKey: source } = await api.settings();
    const now = source === "settings" ? "A key is set here." : source === "environment" ? "The server uses SEGMIND_API_KEY from its environment." : "No key is set.";
    const key = window.prompt(`${now}\nSegmind API key for backend "segmind" (leave empty to remove the one set here):`, "");
    if (key === null) return;
    const saved = await api.saveSettings({ segmindApiKey: key.trim() || null });
    notify(saved.segmindApiKey === "settings" ? "Segmind key saved on the server" : "Segmind key removed", "info");
  } catch (error) {
    notify(`Could not save the Segmind key: ${(error as Error).message}`, "error");
  }
}
$("#toggle-queue").addEventListener("click", () => app.queuePanel.toggle());
$("#queue-batch").addEventListener("click", () => void openBatchDialog(app));
$("#download-model").addEventListener("click", () => void app.modelPanel.open());

window.addEventListener("keydown", (event) => {
  const typing = (event.target as HTMLElement).closest("input, textarea, select, .litesearchbox, .graphdialog");
  const ctrl = event.ctrlKey || event.metaKey;
  if (ctrl && event.key === "Enter") {
    event.preventDefault();
    void app.queue();
  } else if (typing) {
    return;
  } else if (ctrl && event.key.toLowerCase() === "s") {
    event.preventDefault();
    void saveWorkflow();
  } else if (ctrl && event.key.toLowerCase() === "o") {
    event.preventDefault();
    fileInput.click();
  } else if (ctrl && event.key.toLowerCase() === "g") {
    event.preventDefault();
    app.groupSelection();
  }
});

void app.ready.then(refreshWorkflowList).catch((error: unknown) => {
  notify(`The editor could not start: ${(error as Error).message}`, "error", 60_000);
  console.error(error);
});
