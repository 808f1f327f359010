import type { AnyNodeDefinition } from "../node-definition.ts";
import { CropImageNode } from "./crop-image.ts";
import { LoadImageNode } from "./load-image.ts";
import { PreviewImageNode } from "./preview-image.ts";
import { ResizeImageNode } from "./resize-image.ts";
import { SaveImageNode } from "./save-image.ts";

/** The image family, in the order the editor's menu lists them. */
export const imageNodes: readonly AnyNodeDefinition[] = [
  LoadImageNode,
  SaveImageNode,
  PreviewImageNode,
  ResizeImageNode,
  CropImageNode,
];

export { CropImageNode, LoadImageNode, PreviewImageNode, ResizeImageNode, SaveImageNode };
