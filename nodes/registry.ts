import type { AnyNodeDefinition, InputSpec, OutputSpec } from "./node-definition.ts";

/** What GET /api/nodes publishes for one node: everything the editor needs to build it, nothing it runs. */
export interface NodeSchema {
  readonly type: string;
  readonly category: string;
  readonly displayName: string;
  readonly description: string;
  readonly inputs: Readonly<Record<string, InputSpec>>;
  readonly outputs: Readonly<Record<string, OutputSpec>>;
  readonly isOutput: boolean;
}

/** The node types a server knows, by type name. */
export class NodeRegistry {
  readonly #nodes = new Map<string, AnyNodeDefinition>();

  register(...definitions: AnyNodeDefinition[]): this {
    for (const definition of definitions) {
      if (this.#nodes.has(definition.type)) {
        throw new Error(`node type "${definition.type}" is registered twice`);
      }
      this.#nodes.set(definition.type, definition);
    }
    return this;
  }

  get(type: string): AnyNodeDefinition | undefined {
    return this.#nodes.get(type);
  }

  types(): string[] {
    return [...this.#nodes.keys()];
  }

  schemas(): NodeSchema[] {
    return [...this.#nodes.values()].map((node) => ({
      type: node.type,
      category: node.category,
      displayName: node.displayName ?? node.type,
      description: node.description,
      inputs: node.inputs,
      outputs: node.outputs,
      isOutput: node.isOutput ?? false,
    }));
  }
}
