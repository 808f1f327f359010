/**
 * Opens the mask painter from a LoadImage (or a LoadMask) and, on save, uploads the mask PNG and
 * connects it: a LoadMask node reading that file by luminance, created once per image and reused,
 * wired wherever the image's own mask went (or into the empty mask input of the nodes using the image).
 */
import type { LGraphNode } from "@comfyorg/litegraph";
import { api, viewUrl } from "../api/maskflow-api.ts";
import { setWidgetValue, widgetValue } from "../graph/node-types.ts";
import { openMaskEditor } from "../mask/mask-editor.ts";
import { notify } from "../ui/notices.ts";
import type { EditorApp } from "./editor-app.ts";

/** On a LoadMask the painter made: the id of the LoadImage it belongs to. */
export const MASK_SOURCE_PROPERTY = "maskflow_mask_source";

function loadPicture(url: string): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`could not load ${url}`));
    image.src = url;
  });
}

function inputSource(app: EditorApp, node: LGraphNode, inputName: string): { node: LGraphNode; slot: number } | undefined {
  const input = node.inputs?.find((slot) => slot.name === inputName);
  const link = input?.link != null ? app.graph._links.get(input.link) : undefined;
  const source = link ? app.graph.getNodeById(link.origin_id) : undefined;
  return source && link ? { node: source, slot: link.origin_slot } : undefined;
}

/** Nodes fed by an output of `node`, with the input slot they use. */
function consumers(app: EditorApp, node: LGraphNode, outputName: string): Array<{ node: LGraphNode; slot: number }> {
  const output = node.outputs?.find((slot) => slot.name === outputName);
  return (output?.links ?? []).flatMap((id) => {
    const link = app.graph._links.get(id);
    const target = link ? app.graph.getNodeById(link.target_id) : undefined;
    return target && link ? [{ node: target, slot: link.target_slot }] : [];
  });
}

/**
 * The `sourceType` node feeding the `inputType` input of a node that takes `node`'s `outputName`:
 * how a LoadImage finds the LoadMask painted for it, and a LoadMask its LoadImage, in a graph
 * wired by hand.
 */
function partnerThroughConsumers(app: EditorApp, node: LGraphNode, outputName: string, inputType: string, sourceType: string): LGraphNode | undefined {
  for (const consumer of consumers(app, node, outputName)) {
    const input = consumer.node.inputs.find((slot) => slot.type === inputType);
    const source = input ? inputSource(app, consumer.node, input.name) : undefined;
    if (source?.node.type === sourceType) return source.node;
  }
  return undefined;
}

function findMaskNodeFor(app: EditorApp, imageNode: LGraphNode): LGraphNode | undefined {
  const own = app.nodes().find((node) => node.type === "LoadMask" && node.properties[MASK_SOURCE_PROPERTY] === String(imageNode.id));
  return own ?? partnerThroughConsumers(app, imageNode, "image", "MASK", "LoadMask");
}

function findImageNodeFor(app: EditorApp, maskNode: LGraphNode): LGraphNode | undefined {
  const sourceId = maskNode.properties[MASK_SOURCE_PROPERTY];
  const own = sourceId !== undefined ? app.nodeByDocumentId(String(sourceId)) : undefined;
  return own ?? partnerThroughConsumers(app, maskNode, "mask", "IMAGE", "LoadImage");
}

/** Whether a node is still in the graph: painting and uploading take time, and the graph may change meanwhile. */
function inGraph(app: EditorApp, node: LGraphNode | undefined): node is LGraphNode {
  return node !== undefined && app.graph.getNodeById(node.id) === node;
}

export async function openMaskPainterFor(app: EditorApp, node: LGraphNode): Promise<void> {
  const fromMaskNode = node.type === "LoadMask";
  const imageNode = fromMaskNode ? findImageNodeFor(app, node) : node;
  let maskNode = fromMaskNode ? node : imageNode ? findMaskNodeFor(app, imageNode) : undefined;
  const imageFile = String((imageNode ? widgetValue(imageNode, "image") : undefined) ?? "");
  const maskFile = String((maskNode ? widgetValue(maskNode, "image") : undefined) ?? "");
  const backdropFile = imageFile || maskFile;
  if (!backdropFile) {
    notify("Choose or upload an image first, then paint its mask", "info");
    return;
  }
  let image: HTMLImageElement;
  let initialMask: HTMLImageElement | undefined;
  try {
    image = await loadPicture(viewUrl({ filename: backdropFile, type: "input" }));
    if (maskFile) initialMask = await loadPicture(viewUrl({ filename: maskFile, type: "input" })).catch(() => undefined);
  } catch (error) {
    notify(`Cannot paint: ${(error as Error).message} (the image must be in the server's input folder)`, "error");
    return;
  }
  const mask = await openMaskEditor({ image, initialMask, title: `Mask for ${backdropFile}`, imageFile: imageFile || undefined });
  if (!mask) return;

  const stem = backdropFile.replace(/^.*\//, "").replace(/\.[^.]+$/, "") || "image";
  let saved: { name: string };
  try {
    saved = await api.upload(mask, `${stem}-mask.png`);
  } catch (error) {
    notify(`Saving the mask failed: ${(error as Error).message}`, "error");
    return;
  }
  app.images.remember(saved.name);

  // A node removed (or a graph replaced) meanwhile is not written to: the mask goes on a new LoadMask instead of being lost.
  const liveImageNode = inGraph(app, imageNode) ? imageNode : undefined;
  if (!inGraph(app, maskNode)) maskNode = undefined;
  if (!maskNode) {
    const anchor = liveImageNode ?? node;
    maskNode = app.addNode("LoadMask", [anchor.pos[0], anchor.pos[1] + anchor.size[1] + 70]);
    if (!maskNode) {
      notify("The server has no LoadMask node", "error");
      return;
    }
    if (liveImageNode) maskNode.properties[MASK_SOURCE_PROPERTY] = String(liveImageNode.id);
  }
  setWidgetValue(maskNode, "image", saved.name);
  setWidgetValue(maskNode, "channel", "luminance");
  if (liveImageNode) wireMask(app, liveImageNode, maskNode);
  app.canvas.setDirty(true, true);
  app.persist();
  notify(`Mask saved as ${saved.name}`, "success", 2500);
}

/** The painted mask replaces the image's own mask wherever that went, else fills empty mask inputs of the image's users. */
function wireMask(app: EditorApp, imageNode: LGraphNode, maskNode: LGraphNode): void {
  const maskOut = maskNode.outputs.findIndex((slot) => slot.name === "mask");
  if (maskOut < 0) return;
  const targets = consumers(app, imageNode, "mask");
  for (const target of targets) maskNode.connect(maskOut, target.node, target.slot);
  if (targets.length || maskNode.outputs[maskOut].links?.length) return;
  for (const consumer of consumers(app, imageNode, "image")) {
    const slot = consumer.node.inputs.findIndex((input) => input.type === "MASK" && input.link == null);
    if (slot >= 0) maskNode.connect(maskOut, consumer.node, slot);
  }
}
