/**
 * The editor: one LiteGraph graph and canvas, the node types from the server, loading and saving
 * workflow documents, queueing runs and showing what the server reports on the nodes.
 */
import { LGraph, LGraphCanvas, LGraphGroup, LiteGraph, type LGraphNode } from "@comfyorg/litegraph";
import { api, ApiError, type NodeSchema, type SystemInfo, type WorkflowDocument, type WorkflowProblem } from "../api/maskflow-api.ts";
import { type PreviewFrame, type ServerEvent, ServerSocket } from "../api/server-socket.ts";
import { drawablePicture, resetRunState, setErrors, setWarnings, showImages, showPreview, viewOf } from "../graph/node-state.ts";
import { applySeedControls, isImageLoader, type NodeActions, refreshNodeAfterLoad, registerSchemaNodes, widgetValue } from "../graph/node-types.ts";
import { documentToLiteGraph, type LiteGraphData, liteGraphToDocument, schemaMap } from "../graph/workflow-convert.ts";
import { type AddedLoader, type Box, placeLeftOf, TITLE_HEIGHT, upgradeModelLiterals } from "../graph/model-literals.ts";
import { openImageViewer } from "../ui/image-viewer.ts";
import { notify, showConnection } from "../ui/notices.ts";
import { ModelPanel } from "../ui/model-panel.ts";
import { BatchNotices } from "../ui/batch-notices.ts";
import { QueuePanel } from "../ui/queue-panel.ts";
import { engineShortfalls, helperModelShortfalls, NO_LOCAL_MODEL_TOOLBAR, NO_LOCAL_MODEL_TOOLBAR_WITH_DOWNLOAD } from "./engine-check.ts";
import { ServerChoices } from "./server-choices.ts";
import { ImageChoices } from "./image-choices.ts";
import { openMaskPainterFor } from "./mask-wiring.ts";

const STORAGE_KEY = "maskflow.graph.v1";
/** Where a saved graph that failed to restore is moved, so the graph opened instead does not overwrite it. */
const UNRESTORED_KEY = "maskflow.graph.v1.unrestored";
const NAME_KEY = "maskflow.workflowName";

export class EditorApp {
  readonly graph = new LGraph();
  readonly canvas: LGraphCanvas;
  readonly clientId: string;
  readonly images = new ImageChoices();
  /** What Load Checkpoint combos offer (GET /api/models/checkpoints). */
  readonly checkpoints = new ServerChoices(async () => (await api.checkpoints()).checkpoints);
  /** What Load LoRA combos offer (GET /api/models/loras). */
  readonly loras = new ServerChoices(async () => (await api.loras()).loras);
  schemas: NodeSchema[] = [];
  byType: ReadonlyMap<string, NodeSchema> = new Map();
  workflowName = localStorage.getItem(NAME_KEY) ?? "";
  queuePanel: QueuePanel;
  /** Batches queued from here: one notice when each ends, not one per picture. */
  readonly batchNotices = new BatchNotices();
  readonly modelPanel: ModelPanel;
  /** Whether the server offers pulling a model (GET /api/models answered). */
  #canPullModels = false;
  #socket: ServerSocket | undefined;
  #lastSaved = "";
  #runningNode: LGraphNode | undefined;
  /** Set by a reconnect: the status the server sends first says whether the run we were showing is still going. */
  #awaitingStatusAfterReconnect = false;
  #persistFailed = false;
  /** What GET /api/system said last: which engines the server has. */
  #system: SystemInfo | undefined;
  /** Set while a document is being loaded, when the graph is half built. */
  #loading = false;
  /** The view #fitView chose, while the user has not moved it: a resize (the queue panel) fits again. */
  #fittedView: string | undefined;
  /** Runs of this page seen starting: when, and how many pictures they saved so far. */
  #runs = new Map<string, { startedAt: number; saved: number }>();
  /** Resolves when start-up finished; tests wait on it. */
  ready: Promise<void>;

  constructor(readonly canvasElement: HTMLCanvasElement) {
    this.clientId = sessionStorage.getItem("maskflow.clientId") ?? crypto.randomUUID();
    sessionStorage.setItem("maskflow.clientId", this.clientId);
    this.canvas = new LGraphCanvas(canvasElement, this.graph);
    this.queuePanel = new QueuePanel(document.querySelector("#queue-panel")!, {
      load: (workflow) => this.loadDocument(workflow),
      rerun: (workflow) => void this.queue(workflow),
    });
    this.modelPanel = new ModelPanel(document.querySelector("#model-panel")!, {
      pulled: (status) => {
        notify(`Model ${status.builds ? "downloaded and built" : "downloaded"} into ${status.modelDir}: Queue runs on it now`, "success", 6000);
        void this.refreshSystem().then(() => this.checkEngines());
      },
    });
    this.ready = this.#start();
  }

  /** The node list, waiting for the server with the away banner up when the page opened before it. */
  async #nodeSchemasWhenServerIsUp(): Promise<NodeSchema[]> {
    for (let delay = 500; ; delay = Math.min(delay * 2, 10_000)) {
      try {
        const schemas = await api.nodes();
        showConnection({ connected: true });
        return schemas;
      } catch (error) {
        // A refused key is the user's answer, not an outage: stop and say so.
        if (error instanceof ApiError) throw error;
        showConnection({ connected: false, retryInMs: delay });
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  async #start(): Promise<void> {
    LiteGraph.release_link_on_empty_shows_menu = true;
    LiteGraph.alt_drag_do_clone_nodes = true;
    this.canvas.allow_searchbox = true;
    this.canvas.show_info = false;
    this.canvas.render_canvas_border = false;
    this.canvasElement.tabIndex = 0;
    this.canvasElement.addEventListener("pointerdown", () => this.canvasElement.focus());
    this.#fitCanvas();
    // The queue panel and the window both change the canvas' box: follow the box, not the window.
    new ResizeObserver(() => {
      this.#fitCanvas();
      if (this.#fittedView !== undefined && this.#fittedView === this.#viewKey()) this.#fitView();
    }).observe(this.canvasElement.parentElement!);

    this.schemas = await this.#nodeSchemasWhenServerIsUp();
    await Promise.all([this.images.refresh(api.inputFiles), this.checkpoints.refresh(), this.loras.refresh()]);
    this.byType = schemaMap(this.schemas);
    registerSchemaNodes(this.schemas, this.#nodeActions());
    await this.refreshSystem();
    await this.refreshModelPull();
    this.graph.onNodeAdded = () => this.checkEngines();
    this.graph.onNodeRemoved = () => this.checkEngines();

    await this.#openFirstGraph();
    this.#socket = new ServerSocket(this.clientId, {
      event: (event) => this.#onServerEvent(event),
      preview: (frame) => this.#onPreview(frame),
      connection: (state) => {
        showConnection(state);
        if (state.connected) {
          void this.queuePanel.refresh();
          void this.checkpoints.refresh();
          void this.loras.refresh();
          // A server restarted meanwhile may have got (or lost) its model; a pull may have ended while we were away.
          void this.refreshSystem()
            .then(() => this.refreshModelPull())
            .then(() => this.checkEngines());
        } else this.#awaitingStatusAfterReconnect = true;
      },
    });
    this.#socket.connect();
    setInterval(() => this.persist(), 1500);
    window.addEventListener("beforeunload", () => this.persist());
  }

  #fitCanvas(): void {
    const box = this.canvasElement.parentElement!.getBoundingClientRect();
    this.canvas.resize(Math.round(box.width), Math.round(box.height));
  }

  #nodeActions(): NodeActions {
    return {
      uploadInto: (node, widgetName) => this.#pickAndUpload(node, widgetName),
      openMaskEditor: (node) => void openMaskPainterFor(this, node),
      openImage: (url) => openImageViewer(url),
      imageChoices: () => this.images.list(),
      serverChoices: (kind) => (kind === "lora" ? this.loras : this.checkpoints).list(),
      refreshServerChoices: (kind) => (kind === "lora" ? this.loras : this.checkpoints).refresh(),
      widgetChanged: () => this.checkEngines(),
    };
  }

  /** The last graph of this browser, else the shipped "inpaint", else the first shipped workflow, else empty. */
  async #openFirstGraph(): Promise<void> {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (saved) {
      try {
        this.loadDocument(JSON.parse(saved), this.workflowName, { keepName: true });
        return;
      } catch (error) {
        console.warn(`maskflow: the saved graph could not be restored; it is kept in localStorage "${UNRESTORED_KEY}"`, error);
        localStorage.setItem(UNRESTORED_KEY, saved);
      }
    }
    try {
      this.loadDocument(await api.readWorkflow("inpaint"), "inpaint");
      return;
    } catch {
      // Not there (yet): fall through to the first shipped one.
    }
    try {
      const list = await api.listWorkflows();
      const first = list.find((entry) => entry.source === "shipped") ?? list[0];
      if (first) this.loadDocument(await api.readWorkflow(first.name), first.name);
    } catch (error) {
      notify(`Could not list workflows: ${(error as Error).message}`, "error");
    }
  }

  nodes(): LGraphNode[] {
    return [...this.graph._nodes];
  }

  nodeByDocumentId(id: string): LGraphNode | undefined {
    return this.graph._nodes.find((node) => String(node.id) === id);
  }

  /** The graph as a workflow document (what is saved, queued, downloaded). */
  toDocument(): WorkflowDocument {
    const data = this.graph.serialize() as unknown as LiteGraphData;
    data.extra = { ...(data.extra ?? {}), ds: { scale: this.canvas.ds.scale, offset: [...this.canvas.ds.offset] } };
    const document = liteGraphToDocument(data, this.byType);
    if (this.workflowName) document.name = this.workflowName;
    return document;
  }

  /** Replaces the graph with a document; throws when it is not a Maskflow workflow. */
  loadDocument(input: unknown, name?: string, options: { keepName?: boolean } = {}): void {
    const document = input as WorkflowDocument;
    if (!document || typeof document !== "object" || document.format !== "maskflow-workflow" || !Array.isArray(document.nodes)) {
      throw new Error('not a Maskflow workflow (expected {"format": "maskflow-workflow", "nodes": […]})');
    }
    // A model named by text on Inpaint (workflows from before the MODEL socket) becomes a Load Checkpoint wired to it.
    const upgrade = upgradeModelLiterals(document, this.byType);
    const data = documentToLiteGraph(upgrade.document, this.byType);
    this.#loading = true;
    try {
      this.graph.clear();
      this.graph.configure(data as unknown as Parameters<LGraph["configure"]>[0]);
    } finally {
      this.#loading = false;
    }
    for (const node of this.graph._nodes) {
      refreshNodeAfterLoad(node);
      if (isImageLoader(node)) this.images.remember(String(widgetValue(node, "image") ?? ""));
      if (!this.byType.has(node.type)) setErrors(node, [`unknown node type "${node.type}": the server has no such node`]);
    }
    // After the refresh: nodes showing a picture have grown to hold it, and the fit must include that.
    this.#placeAddedLoaders(upgrade.added);
    const ds = data.extra?.ds as { scale: number; offset: [number, number] } | undefined;
    // A node added to the graph may lie outside the saved view: show the whole graph then.
    if (ds && !upgrade.added.length) {
      this.canvas.ds.scale = ds.scale;
      this.canvas.ds.offset = [ds.offset[0], ds.offset[1]];
      this.#fittedView = undefined;
    } else {
      this.#fitView();
    }
    if (name !== undefined || !options.keepName) this.setWorkflowName(name ?? document.name ?? "");
    this.checkEngines();
    this.canvas.setDirty(true, true);
    this.persist();
  }

  /**
   * The Load Checkpoint nodes a load added, placed again now that LiteGraph has sized every node (the document may
   * not say how big its nodes are): left of the node each feeds, covering none.
   */
  #placeAddedLoaders(added: readonly AddedLoader[]): void {
    const boxOf = (node: LGraphNode): Box => [node.pos[0], node.pos[1] - TITLE_HEIGHT, node.size[0], (node.flags.collapsed ? 0 : node.size[1]) + TITLE_HEIGHT];
    const unplaced = new Set(added.map(({ loaderId }) => loaderId));
    for (const { loaderId, targetId, checkpoint } of added) {
      const loader = this.nodeByDocumentId(loaderId);
      const target = this.nodeByDocumentId(targetId);
      unplaced.delete(loaderId);
      if (!loader || !target) continue;
      const others = this.graph._nodes.filter((node) => node !== target && !unplaced.has(String(node.id)) && node !== loader).map(boxOf);
      const pos = placeLeftOf(boxOf(target), [loader.size[0], loader.size[1]], others);
      loader.pos = [pos[0], pos[1]];
      notify(`${target.title} (node ${targetId}) named its model "${checkpoint}": it is now a ${loader.title} node wired to it`, "info", 5000);
    }
  }

  #viewKey(): string {
    return JSON.stringify([this.canvas.ds.scale, ...this.canvas.ds.offset]);
  }

  /** Fits the whole graph into the canvas, which is the window less the toolbar and the queue panel when open. */
  #fitView(): void {
    const nodes = this.graph._nodes;
    if (!nodes.length) return;
    const minX = Math.min(...nodes.map((n) => n.pos[0]));
    const minY = Math.min(...nodes.map((n) => n.pos[1] - 30));
    const maxX = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]));
    const maxY = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]));
    const { width, height } = this.canvasElement;
    const scale = Math.min(1.2, Math.max(0.3, Math.min(width / (maxX - minX + 120), height / (maxY - minY + 120))));
    this.canvas.ds.scale = scale;
    this.canvas.ds.offset = [(width / scale - (maxX - minX)) / 2 - minX, (height / scale - (maxY - minY)) / 2 - minY];
    this.canvas.setDirty(true, true);
    this.#fittedView = this.#viewKey();
  }

  setWorkflowName(name: string): void {
    this.workflowName = name;
    localStorage.setItem(NAME_KEY, name);
    const label = document.querySelector<HTMLElement>("#workflow-name");
    if (label) label.textContent = name || "unsaved workflow";
  }

  /** Keeps the graph in this browser so a reload brings it back. */
  persist(): void {
    if (!this.schemas.length) return;
    const text = JSON.stringify(this.toDocument());
    if (text === this.#lastSaved) return;
    try {
      localStorage.setItem(STORAGE_KEY, text);
    } catch (error) {
      // Storage full or blocked: say so once rather than throw from the timer every 1.5 s.
      if (!this.#persistFailed) notify(`This browser could not keep the graph (${(error as Error).message}): save it on the server`, "error", 10_000);
      this.#persistFailed = true;
      return;
    }
    this.#persistFailed = false;
    this.#lastSaved = text;
  }

  newGraph(): void {
    this.graph.clear();
    this.#fittedView = undefined;
    this.setWorkflowName("");
    this.persist();
  }

  /** Groups the selected nodes (Ctrl+G). */
  groupSelection(): void {
    const nodes = [...this.canvas.selectedItems].filter((item): item is LGraphNode => item instanceof LiteGraph.LGraphNode);
    if (!nodes.length) return notify("Select the nodes to group first", "info");
    const group = new LGraphGroup("Group");
    this.graph.add(group);
    group.resizeTo(nodes, 10);
    this.canvas.setDirty(true, true);
  }

  addNode(type: string, pos?: [number, number]): LGraphNode | undefined {
    const node = LiteGraph.createNode(type);
    if (!node) return undefined;
    node.pos = pos ?? [this.canvas.graph_mouse[0], this.canvas.graph_mouse[1]];
    this.graph.add(node);
    return node;
  }

  // --- running -----------------------------------------------------------------------------

  /** Asks the server which engines it has; keeps the last answer when it cannot be reached. */
  async refreshSystem(): Promise<SystemInfo | undefined> {
    try {
      this.#system = await api.system();
    } catch {
      // Away, or an older server: the connection banner speaks for the first, and nothing is claimed for the second.
    }
    return this.#system;
  }

  /** Asks the server for the model pull it holds (one started before a reload, or from another tab). */
  async refreshModelPull(): Promise<void> {
    if (!this.#system?.canPullModels) {
      this.#canPullModels = false;
      return;
    }
    try {
      const { pull } = await api.models();
      this.#canPullModels = true;
      this.modelPanel.update(pull);
    } catch {
      // An older server, or one without a models folder to offer: no Download button then.
      this.#canPullModels = false;
    }
  }

  /**
   * Marks the nodes that will fail for want of an engine the server lacks, and says so in the toolbar,
   * so the user learns it before pressing Queue rather than from a failed run.
   */
  checkEngines(): void {
    if (this.#loading || !this.schemas.length) return;
    const shortfalls = engineShortfalls(this.toDocument(), this.#system);
    // A missing helper model (mobile-sam, lama) marks its nodes too; the toolbar's banner stays about the local model.
    const byNode = new Map([...shortfalls, ...helperModelShortfalls(this.toDocument(), this.#system)].map((shortfall) => [shortfall.nodeId, shortfall.message]));
    for (const node of this.graph._nodes) {
      const message = byNode.get(String(node.id));
      setWarnings(node, message ? [message] : []);
    }
    const banner = document.querySelector<HTMLElement>("#engine-warning");
    if (banner) {
      banner.hidden = shortfalls.length === 0;
      banner.textContent = this.#canPullModels ? NO_LOCAL_MODEL_TOOLBAR_WITH_DOWNLOAD : NO_LOCAL_MODEL_TOOLBAR;
      banner.title = this.#system?.engines.local?.summary ?? NO_LOCAL_MODEL_TOOLBAR;
    }
    const download = document.querySelector<HTMLButtonElement>("#download-model");
    if (download) download.hidden = !this.#canPullModels || (shortfalls.length === 0 && !this.modelPanel.running);
  }

  /** Queues the graph (or a given document); validation problems mark their nodes before anything runs. */
  async queue(workflow?: WorkflowDocument): Promise<void> {
    if (!workflow) applySeedControls(this.nodes());
    const document = workflow ?? this.toDocument();
    this.clearMarks();
    // Asked again now: a model pulled since the page opened counts.
    const shortfalls = engineShortfalls(document, await this.refreshSystem());
    if (!workflow) this.checkEngines();
    if (shortfalls.length) {
      const names = shortfalls.map(({ nodeId }) => {
        const type = document.nodes.find((node) => node.id === nodeId)?.type ?? "node";
        return `${this.nodeByDocumentId(nodeId)?.title ?? type} (node ${nodeId})`;
      });
      notify(
        `Not queued: the server has no local model, so ${names.join(", ")} would fail. ` +
          "Run `maskflow models pull` on the server, or switch backend to segmind.",
        "error",
        8000,
      );
      return;
    }
    try {
      const { position } = await api.queuePrompt(document, this.clientId);
      notify(position > 0 ? `Queued (position ${position + 1})` : "Queued", "info", 1500);
    } catch (error) {
      if (error instanceof ApiError && error.details.problems?.length) {
        this.markProblems(error.details.problems);
        notify(`The workflow has ${error.details.problems.length} problem(s): see the marked nodes`, "error");
      } else if (error instanceof ApiError && error.status === 429) {
        notify("The queue is full: wait for a job to finish", "error");
      } else {
        notify(`Could not queue: ${(error as Error).message}`, "error");
      }
    }
    void this.queuePanel.refresh();
  }

  clearMarks(): void {
    for (const node of this.graph._nodes) {
      if (this.byType.has(node.type)) setErrors(node, []);
    }
  }

  markProblems(problems: readonly WorkflowProblem[]): void {
    const byNode = new Map<string, string[]>();
    const general: string[] = [];
    for (const problem of problems) {
      const text = problem.input ? `${problem.input}: ${problem.message}` : problem.message;
      if (problem.nodeId !== undefined && this.nodeByDocumentId(problem.nodeId)) {
        byNode.set(problem.nodeId, [...(byNode.get(problem.nodeId) ?? []), text]);
      } else general.push(text);
    }
    for (const [id, messages] of byNode) setErrors(this.nodeByDocumentId(id)!, messages);
    for (const message of general) notify(message, "error");
  }

  #onServerEvent(event: ServerEvent): void {
    switch (event.type) {
      case "status":
        document.querySelector("#queue-count")!.textContent = String(event.data.status.queueRemaining);
        // A run that ended while we were away sent its end to nobody: do not leave its node framed and half-way.
        if (this.#awaitingStatusAfterReconnect && event.data.status.running === null) this.#finishRunningNode();
        this.#awaitingStatusAfterReconnect = false;
        void this.queuePanel.refresh();
        return;
      case "execution_start":
        for (const node of this.graph._nodes) resetRunState(node);
        this.#runs.set(event.data.jobId, { startedAt: performance.now(), saved: 0 });
        return;
      case "execution_cached":
        return;
      case "executing": {
        this.#finishRunningNode();
        const node = this.nodeByDocumentId(event.data.node);
        if (node) {
          viewOf(node).running = true;
          this.#runningNode = node;
          node.setDirtyCanvas(true, true);
        }
        return;
      }
      case "progress": {
        const node = this.nodeByDocumentId(event.data.node);
        if (node) {
          viewOf(node).progress = { value: event.data.value, max: event.data.max, label: event.data.label };
          node.setDirtyCanvas(true, false);
        }
        return;
      }
      case "executed": {
        const node = this.nodeByDocumentId(event.data.node);
        if (node && event.data.output.images?.length) showImages(node, event.data.output.images);
        const run = this.#runs.get(event.data.jobId);
        if (run) run.saved += (event.data.output.images ?? []).filter((image) => image.type === "output").length;
        return;
      }
      case "execution_error": {
        this.#runs.delete(event.data.jobId);
        this.batchNotices.ended(event.data.jobId, "error");
        this.#finishRunningNode();
        if (event.data.problems?.length) this.markProblems(event.data.problems);
        const node = event.data.node ? this.nodeByDocumentId(event.data.node) : undefined;
        if (node) setErrors(node, [event.data.message]);
        notify(`Run failed${node ? ` at ${node.title}` : ""}: ${event.data.message}`, "error");
        void this.queuePanel.refresh();
        return;
      }
      case "execution_interrupted":
        this.batchNotices.ended(event.data.jobId, "interrupted");
        this.#runs.delete(event.data.jobId);
        this.#finishRunningNode();
        notify("Run interrupted", "info");
        void this.queuePanel.refresh();
        return;
      case "model_pull":
        this.modelPanel.update(event.data);
        if (event.data.state !== "downloading" && event.data.state !== "building") this.checkEngines();
        return;
      case "execution_success": {
        this.#finishRunningNode();
        if (!this.batchNotices.ended(event.data.jobId, "success")) notify(doneMessage(this.#runs.get(event.data.jobId)), "success");
        this.#runs.delete(event.data.jobId);
        void this.queuePanel.refresh();
        return;
      }
    }
  }

  #finishRunningNode(): void {
    if (this.#runningNode) resetRunState(this.#runningNode);
    this.#runningNode = undefined;
  }

  #onPreview(frame: PreviewFrame): void {
    const node = this.nodeByDocumentId(frame.nodeId);
    if (node) showPreview(node, frame.jpeg);
  }

  // --- images ------------------------------------------------------------------------------

  #pickAndUpload(node: LGraphNode, widgetName: string): void {
    const input = document.createElement("input");
    input.type = "file";
    input.accept = "image/*";
    input.onchange = () => {
      const file = input.files?.[0];
      if (file) void this.uploadInto(node, widgetName, file);
    };
    input.click();
  }

  /** Uploads a picture and points the node's file widget at it. */
  async uploadInto(node: LGraphNode, widgetName: string, file: File): Promise<void> {
    try {
      const saved = await api.upload(file, file.name);
      this.images.remember(saved.name);
      const widget = node.widgets?.find((w) => w.name === widgetName);
      if (widget) {
        widget.value = saved.name;
        widget.callback?.(saved.name);
      }
      node.setDirtyCanvas(true, true);
      this.persist();
    } catch (error) {
      notify(`Upload failed: ${(error as Error).message}`, "error");
    }
  }

  /** What a node shows (pictures, progress, errors): for tests and debugging. */
  nodeView(
    id: string,
  ): { images: string[]; errors: string[]; warnings: string[]; progress?: { value: number; max: number }; loaded: number; pictureRects: Array<[number, number, number, number]> } | undefined {
    const node = this.nodeByDocumentId(id);
    if (!node) return undefined;
    const view = viewOf(node);
    return {
      images: view.images.map((picture) => picture.url),
      errors: [...view.errors],
      warnings: [...view.warnings],
      progress: view.progress,
      loaded: view.images.filter((picture) => drawablePicture(picture) !== undefined).length,
      // Where the pictures were drawn last, in node coordinates.
      pictureRects: view.imageRects.map(({ rect }) => rect),
    };
  }

  /** Page coordinates of a point given in graph coordinates (tests and overlays use it). */
  toClient(graphPoint: [number, number]): [number, number] {
    const [x, y] = this.canvas.ds.convertOffsetToCanvas(graphPoint);
    const box = this.canvasElement.getBoundingClientRect();
    const ratio = this.canvasElement.width / box.width || 1;
    return [box.left + x / ratio, box.top + y / ratio];
  }
}

/** "Done in 3.2 s — 1 image saved"; a run that started before this page connected has no start time here. */
function doneMessage(run: { startedAt: number; saved: number } | undefined): string {
  if (!run) return "Done";
  const seconds = ((performance.now() - run.startedAt) / 1000).toFixed(1);
  const saved = run.saved === 0 ? "no image saved" : run.saved === 1 ? "1 image saved" : `${run.saved} images saved`;
  return `Done in ${seconds} s — ${saved}`;
}
