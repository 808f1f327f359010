/**
 * Files from outside: a dropped or opened JSON workflow replaces the graph; a PNG that carries a
 * workflow (SaveImage writes one) replaces the graph with it; another picture dropped on an image
 * node is uploaded into it, and dropped on the empty canvas becomes a new LoadImage.
 */
import type { LGraphNode } from "@comfyorg/litegraph";
import { isPng, readWorkflowFromPng } from "../files/png-text-chunks.ts";
import { isImageLoader } from "../graph/node-types.ts";
import { notify } from "../ui/notices.ts";
import type { EditorApp } from "./editor-app.ts";

export async function openFile(app: EditorApp, file: File, target?: { graphPos: [number, number]; node?: LGraphNode }): Promise<void> {
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    if (file.name.toLowerCase().endsWith(".json") || file.type === "application/json") {
      app.loadDocument(JSON.parse(new TextDecoder().decode(bytes)), file.name.replace(/\.json$/i, ""));
      notify(`Opened ${file.name}`, "success", 2000);
      return;
    }
    if (!file.type.startsWith("image/") && !isPng(bytes)) {
      notify(`${file.name} is neither a workflow (.json) nor a picture`, "error");
      return;
    }
    const onImageNode = target?.node && isImageLoader(target.node) ? target.node : undefined;
    if (onImageNode) {
      await app.uploadInto(onImageNode, "image", file);
      return;
    }
    if (isPng(bytes)) {
      const workflow = readWorkflowFromPng(bytes);
      if (workflow !== undefined) {
        app.loadDocument(workflow, undefined);
        notify(`Loaded the workflow saved in ${file.name}`, "success", 2500);
        return;
      }
    }
    const node = app.addNode("LoadImage", target?.graphPos);
    if (node) await app.uploadInto(node, "image", file);
  } catch (error) {
    notify(`Could not open ${file.name}: ${(error as Error).message}`, "error");
  }
}

export function installDropTarget(app: EditorApp): void {
  const element = app.canvasElement;
  element.addEventListener("dragover", (event) => {
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
  });
  element.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer?.files[0];
    if (!file) return;
    app.canvas.adjustMouseEvent(event);
    const graphPos: [number, number] = [event.canvasX, event.canvasY];
    const node = app.graph.getNodeOnPos(graphPos[0], graphPos[1]) ?? undefined;
    void openFile(app, file, { graphPos, node });
  });
}
