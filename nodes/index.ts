/** Every node type that ships with Maskflow, registered in one place. */
import { imageNodes } from "./image/index.ts";
import { maskNodes } from "./mask/index.ts";
import { primitiveNodes } from "./primitive/primitive-nodes.ts";
import { PromptNode } from "./prompt/prompt-node.ts";
import { NodeRegistry } from "./registry.ts";

export function createBuiltinRegistry(): NodeRegistry {
  return new NodeRegistry().register(...imageNodes, ...maskNodes, PromptNode, ...primitiveNodes);
}
