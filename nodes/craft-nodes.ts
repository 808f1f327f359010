/** The model-free inpainting-craft nodes: crop and stitch, outpaint padding, classical fill, compositing. */
import { ClassicalFillNode } from "./fill/classical-fill.ts";
import { BlendImagesNode } from "./image/blend-images.ts";
import { CompositeImageNode } from "./image/composite-image.ts";
import { PadImageNode } from "./image/pad-image.ts";
import { CropToMaskNode } from "./mask/crop-to-mask.ts";
import { ImageToMaskNode } from "./mask/image-to-mask.ts";
import { MaskToImageNode } from "./mask/mask-to-image.ts";
import { StitchNode } from "./mask/stitch.ts";
import type { AnyNodeDefinition } from "./node-definition.ts";

/** In the order the editor's menu should list them within their categories. */
export const craftNodes: readonly AnyNodeDefinition[] = [
  PadImageNode,
  CompositeImageNode,
  BlendImagesNode,
  CropToMaskNode,
  StitchNode,
  MaskToImageNode,
  ImageToMaskNode,
  ClassicalFillNode,
];

export {
  BlendImagesNode,
  ClassicalFillNode,
  CompositeImageNode,
  CropToMaskNode,
  ImageToMaskNode,
  MaskToImageNode,
  PadImageNode,
  StitchNode,
};
