/** Every node type that ships with Maskflow, registered in one place. */
import { craftNodes } from "./craft-nodes.ts";
import { helperModelNodes } from "./helper-model-nodes.ts";
import { imageNodes } from "./image/index.ts";
import { InpaintNode } from "./inpaint/inpaint-node.ts";
import { maskNodes } from "./mask/index.ts";
import { CheckpointLoaderNode } from "./model/checkpoint-loader.ts";
import { InpaintingMergeNode } from "./model/inpainting-merge.ts";
import { LoraLoaderNode } from "./model/lora-loader.ts";
import { primitiveNodes } from "./primitive/primitive-nodes.ts";
import { PromptNode } from "./prompt/prompt-node.ts";
import { NodeRegistry } from "./registry.ts";
import { SchedulerNode } from "./sampling/scheduler-node.ts";

export function createBuiltinRegistry(): NodeRegistry {
  return new NodeRegistry().register(...imageNodes, ...maskNodes, ...craftNodes, ...helperModelNodes, CheckpointLoaderNode, LoraLoaderNode, InpaintingMergeNode, PromptNode, SchedulerNode, InpaintNode, ...primitiveNodes);
}
