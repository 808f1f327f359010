/**
 * Runs a workflow: validates it, works back from the output nodes to what they need, and runs that in
 * topological order. Each node's outputs are cached under a hash of (type, literal inputs, fingerprint,
 * upstream keys), so re-running an unchanged graph runs nothing and a changed widget re-runs only that
 * node and what depends on it.
 */
import { createHash } from "node:crypto";
import type { AnyNodeDefinition, ImageRef, NodeContext, NodeEngines, NodeLogger, NodeStorage } from "../../nodes/node-definition.ts";
import type { NodeRegistry } from "../../nodes/registry.ts";
import { isLink, type WorkflowDocument, type WorkflowNode } from "../workflow/workflow-document.ts";
import { WorkflowInvalidError } from "../workflow/workflow-problem.ts";
import { parseSeedLiteral, validateWorkflow } from "../workflow/validate-workflow.ts";
import type { ExecutionEventListener, NodeOutputRecord } from "./execution-event.ts";
import { isInterruption, JobInterruptedError } from "./job-interrupted.ts";
import { OutputCache } from "./output-cache.ts";
import { planRun, stillNeeded } from "./run-plan.ts";

export interface ExecutorOptions {
  readonly registry: NodeRegistry;
  readonly storage: NodeStorage;
  readonly engines?: NodeEngines;
  readonly logger?: NodeLogger;
  /** Upper bound of the bytes the output cache holds (default 1 GiB). */
  readonly cacheBytes?: number;
}

export interface RunOptions {
  readonly jobId: string;
  readonly signal?: AbortSignal;
  readonly onEvent?: ExecutionEventListener;
}

export type JobStatus = "success" | "error" | "interrupted";

export interface JobResult {
  readonly status: JobStatus;
  /** Per node id: pictures shown and values reported, cached nodes included. */
  readonly outputs: Readonly<Record<string, NodeOutputRecord>>;
  readonly error?: { readonly node?: string; readonly nodeType?: string; readonly message: string };
  /** Node ids that actually ran, in order (the others came from the cache). */
  readonly executed: readonly string[];
  readonly cached: readonly string[];
}

const silentLogger: NodeLogger = { info() {}, warn() {} };

export class Executor {
  readonly cache: OutputCache;
  readonly #registry: NodeRegistry;
  readonly #storage: NodeStorage;
  readonly #engines: NodeEngines;
  readonly #logger: NodeLogger;

  constructor(options: ExecutorOptions) {
    this.#registry = options.registry;
    this.#storage = options.storage;
    this.#engines = options.engines ?? {};
    this.#logger = options.logger ?? silentLogger;
    this.cache = new OutputCache(options.cacheBytes ?? 1024 ** 3);
  }

  /** Throws WorkflowInvalidError with every problem when the workflow cannot run. */
  validate(raw: unknown): WorkflowDocument {
    const validation = validateWorkflow(raw, this.#registry, { requireOutputNode: true });
    if (!validation.ok) throw new WorkflowInvalidError(validation.problems);
    return validation.workflow;
  }

  async run(raw: unknown, options: RunOptions): Promise<JobResult> {
    const { jobId } = options;
    const emit: ExecutionEventListener = options.onEvent ?? (() => {});
    const signal = options.signal ?? new AbortController().signal;
    const outputs: Record<string, NodeOutputRecord> = {};
    const executed: string[] = [];
    const cached: string[] = [];
    emit({ type: "execution_start", jobId });

    let workflow: WorkflowDocument;
    try {
      workflow = this.validate(raw);
    } catch (error) {
      const problems = error instanceof WorkflowInvalidError ? error.problems : undefined;
      const message = error instanceof Error ? error.message : String(error);
      emit({ type: "execution_error", jobId, message, problems });
      return { status: "error", outputs, executed, cached, error: { message } };
    }

    const order = this.#plan(workflow);
    const keys = new Map<string, string>();
    const pinned = new Map<string, Readonly<Record<string, unknown>>>();
    let current: WorkflowNode | undefined;
    try {
      // Keys first, so the client learns every cached node before anything runs (as ComfyUI does).
      for (const node of order) {
        keys.set(node.id, await this.#cacheKey(node, keys));
      }
      for (const node of order) {
        const hit = this.cache.get(keys.get(node.id)!);
        if (hit) {
          pinned.set(node.id, hit.outputs);
          outputs[node.id] = hit.record;
          cached.push(node.id);
        }
      }
      emit({ type: "execution_cached", jobId, nodes: cached });
      const toRun = this.#stillNeeded(workflow, pinned);

      for (const node of order) {
        if (pinned.has(node.id) || !toRun.has(node.id)) continue;
        if (signal.aborted) throw signal.reason ?? new JobInterruptedError();
        current = node;
        const definition = this.#registry.get(node.type)!;
        emit({ type: "executing", jobId, node: node.id });
        const images: ImageRef[] = [];
        const values: Record<string, string | number | boolean> = {};
        const ctx: NodeContext = {
          nodeId: node.id,
          jobId,
          signal,
          progress: ({ value, max, label, preview }) => {
            if (signal.aborted) throw signal.reason ?? new JobInterruptedError();
            emit({ type: "progress", jobId, node: node.id, value, max, ...(label ? { label } : {}) });
            if (preview) emit({ type: "preview", jobId, node: node.id, image: preview });
          },
          show: (refs) => void images.push(...refs),
          report: (reported) => void Object.assign(values, reported),
          storage: this.#storage,
          logger: this.#logger,
          engines: this.#engines,
          workflow,
        };
        const result = await definition.run(this.#resolveInputs(node, definition, pinned), ctx);
        const record: NodeOutputRecord = { images, values };
        pinned.set(node.id, result);
        outputs[node.id] = record;
        executed.push(node.id);
        this.cache.set(keys.get(node.id)!, result, record);
        emit({ type: "executed", jobId, node: node.id, output: record });
      }
      current = undefined;
      emit({ type: "execution_success", jobId });
      return { status: "success", outputs, executed, cached };
    } catch (error) {
      if (isInterruption(error) || signal.aborted) {
        emit({ type: "execution_interrupted", jobId, node: current?.id });
        return { status: "interrupted", outputs, executed, cached, error: { node: current?.id, message: "interrupted by the user" } };
      }
      const message = error instanceof Error ? error.message : String(error);
      this.#logger.warn(`job ${jobId}: node ${current?.id ?? "?"} (${current?.type ?? "?"}) failed: ${message}`);
      emit({ type: "execution_error", jobId, node: current?.id, nodeType: current?.type, message });
      return { status: "error", outputs, executed, cached, error: { node: current?.id, nodeType: current?.type, message } };
    }
  }

  /** The nodes the output nodes need, each after everything it links from (stable in document order). */
  #plan(workflow: WorkflowDocument): WorkflowNode[] {
    return planRun(workflow, (node) => this.#registry.get(node.type)?.isOutput === true);
  }

  #stillNeeded(workflow: WorkflowDocument, cached: ReadonlyMap<string, unknown>): Set<string> {
    return stillNeeded(workflow, cached, (node) => this.#registry.get(node.type)?.isOutput === true);
  }

  async #cacheKey(node: WorkflowNode, upstream: ReadonlyMap<string, string>): Promise<string> {
    const definition = this.#registry.get(node.type)!;
    const parts: Record<string, unknown> = {};
    for (const name of Object.keys(definition.inputs).sort()) {
      const value = node.inputs[name];
      parts[name] = isLink(value) ? { from: upstream.get(value[0]), output: value[1] } : (value ?? null);
    }
    let fingerprint = "";
    if (definition.fingerprint) {
      fingerprint = await definition.fingerprint(this.#resolveInputs(node, definition, new Map()), { storage: this.#storage });
    }
    return createHash("sha256")
      .update(JSON.stringify({ type: node.type, inputs: parts, fingerprint }))
      .digest("hex");
  }

  /** Literal values with defaults applied and seeds as bigint; links looked up in what has run (absent when not yet). */
  #resolveInputs(
    node: WorkflowNode,
    definition: AnyNodeDefinition,
    results: ReadonlyMap<string, Readonly<Record<string, unknown>>>,
  ): Record<string, unknown> {
    const inputs: Record<string, unknown> = {};
    for (const [name, spec] of Object.entries(definition.inputs)) {
      const value = node.inputs[name];
      let resolved: unknown;
      if (isLink(value)) {
        resolved = results.get(value[0])?.[value[1]];
      } else {
        resolved = value ?? spec.default;
      }
      if (spec.type === "SEED" && (typeof resolved === "number" || typeof resolved === "string")) {
        resolved = parseSeedLiteral(resolved);
      }
      inputs[name] = resolved ?? undefined;
    }
    return inputs;
  }
}
