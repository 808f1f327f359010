/** The nodes that run a helper model (models pulled with `maskflow models pull NAME`): click-to-select and learned fill. */
import { LearnedFillNode } from "./fill/learned-fill.ts";
import { SegmentAnythingNode } from "./mask/segment-anything.ts";
import type { AnyNodeDefinition } from "./node-definition.ts";

export const helperModelNodes: readonly AnyNodeDefinition[] = [SegmentAnythingNode, LearnedFillNode];

export { LearnedFillNode, SegmentAnythingNode };
