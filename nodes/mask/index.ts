import type { AnyNodeDefinition } from "../node-definition.ts";
import { FeatherMaskNode } from "./feather-mask.ts";
import { GrowMaskNode } from "./grow-mask.ts";
import { InvertMaskNode } from "./invert-mask.ts";
import { LoadMaskNode } from "./load-mask.ts";
import { ThresholdMaskNode } from "./threshold-mask.ts";

/** The mask family, in the order the editor's menu lists them. */
export const maskNodes: readonly AnyNodeDefinition[] = [
  LoadMaskNode,
  GrowMaskNode,
  FeatherMaskNode,
  InvertMaskNode,
  ThresholdMaskNode,
];

export { FeatherMaskNode, GrowMaskNode, InvertMaskNode, LoadMaskNode, ThresholdMaskNode };
