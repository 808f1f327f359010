import { describe, expect, it } from "vitest";
import { createBuiltinRegistry } from "../../nodes/index.ts";
import type { WorkflowDocument } from "../../server/workflow/workflow-document.ts";
import {
  DOCUMENT_NODE_PROPERTY,
  documentToLiteGraph,
  HELD_INPUTS_PROPERTY,
  liteGraphToDocument,
  schemaMap,
} from "../../client/src/graph/workflow-convert.ts";
import { type Box, estimatedSize, placeLeftOf, TITLE_HEIGHT, upgradeModelLiterals } from "../../client/src/graph/model-literals.ts";
import { canConnect, hasWidget, SOCKET_COLOURS } from "../../client/src/graph/socket-types.ts";

const schemas = createBuiltinRegistry().schemas();

const document: WorkflowDocument = {
  format: "maskflow-workflow",
  version: 1,
  name: "round trip",
  description: "every kind of input and ui field",
  nodes: [
    { id: "1", type: "LoadImage", inputs: { image: "room.png" }, ui: { pos: [10, 20], size: [260, 300], title: "Room", color: "#223" } },
    { id: "7", type: "LoadMask", inputs: { image: "room-mask.png", channel: "luminance" }, ui: { pos: [10, 400], collapsed: true } },
    { id: "node-b", type: "GrowMask", inputs: { mask: ["7", "mask"], pixels: 4 }, ui: { pos: [300, 400], bgcolor: "#311", mode: 4 } },
    { id: "12", type: "ResizeImage", inputs: { image: ["1", "image"], width: ["20", "value"], height: 384, mode: "fit", kernel: "nearest" }, ui: { pos: [300, 20], properties: { note: "kept" }, pinnedByUser: true } },
    { id: "20", type: "Int", inputs: { value: 640 }, ui: { pos: [0, 700] } },
    { id: "30", type: "SaveImage", inputs: { images: ["12", "image"], filename_prefix: "out" }, ui: { pos: [600, 20] } },
  ],
  ui: { groups: [{ title: "Inputs", bounding: [0, 0, 280, 760], color: "#3f789e", font_size: 24 }], viewport: { scale: 0.8, offset: [12, -30] }, theme: "dark" },
};

describe("workflow document ⇄ LiteGraph serialisation", () => {
  it("round-trips a document without loss: ids, literals, links, ui, groups, viewport", () => {
    const graph = documentToLiteGraph(document, schemas);
    const back = liteGraphToDocument(JSON.parse(JSON.stringify(graph)), schemas);
    expect(back).toEqual(document);
  });

  it("maps links to LiteGraph link arrays with slot indices and typed colours", () => {
    const graph = documentToLiteGraph(document, schemas);
    const resize = graph.nodes.find((node) => node.id === 12)!;
    expect(resize.inputs!.map((input) => input.name)).toEqual(["image", "width", "height", "mode", "kernel"]);
    expect(resize.inputs![1].widget).toEqual({ name: "width" });
    expect(resize.widgets_values).toEqual([512, 384, "fit", "nearest"]); // a linked width keeps its default in the widget
    const widthLink = graph.links.find((link) => link[0] === resize.inputs![1].link)!;
    expect(widthLink).toEqual([widthLink[0], 20, 0, 12, 1, "INT"]);
    expect(graph.nodes.find((node) => node.id === "node-b")!.id).toBe("node-b");
    expect(graph.groups[0]).toMatchObject({ title: "Inputs", bounding: [0, 0, 280, 760] });
    expect(graph.extra?.ds).toEqual({ scale: 0.8, offset: [12, -30] });
  });

  it("reads an edited LiteGraph graph back: a new link, a changed widget, a moved node", () => {
    const graph = documentToLiteGraph(document, schemas);
    const save = graph.nodes.find((node) => node.id === 30)!;
    const load = graph.nodes.find((node) => node.id === 1)!;
    // Re-wire SaveImage straight to LoadImage as LiteGraph would: new link id, origin slot 0.
    graph.links = graph.links.filter((link) => link[0] !== save.inputs![0].link);
    graph.links.push([99, 1, 0, 30, 0, "IMAGE"]);
    save.inputs![0].link = 99;
    save.widgets_values = ["renamed"];
    load.pos = [55.123, 66.456];
    const back = liteGraphToDocument(graph, schemas);
    const saved = back.nodes.find((node) => node.id === "30")!;
    expect(saved.inputs).toEqual({ images: ["1", "image"], filename_prefix: "renamed" });
    expect(back.nodes.find((node) => node.id === "1")!.ui!.pos).toEqual([55.12, 66.46]);
  });

  it("keeps what the canvas cannot show: unknown types, dangling links, stray inputs", () => {
    const odd: WorkflowDocument = {
      format: "maskflow-workflow",
      version: 1,
      nodes: [
        { id: "1", type: "FutureNode", inputs: { strength: 0.5, image: ["2", "image"] }, ui: { pos: [0, 0] } },
        { id: "2", type: "ResizeImage", inputs: { image: ["404", "image"], width: 64, height: 64, mode: "fit", kernel: "nearest", bogus: 3 }, ui: { pos: [1, 2] } },
        { id: "3", type: "SaveImage", inputs: { images: "not-a-link" }, ui: { pos: [3, 4] } },
      ],
    };
    const graph = documentToLiteGraph(odd, schemas);
    expect(graph.nodes[0].properties![DOCUMENT_NODE_PROPERTY]).toEqual(odd.nodes[0]);
    expect(graph.nodes[1].properties![HELD_INPUTS_PROPERTY]).toEqual({ image: ["404", "image"], bogus: 3 });
    expect(graph.links).toEqual([]);
    expect(liteGraphToDocument(graph, schemas)).toEqual(odd);
  });

  it("writes INT and SEED widget values as whole numbers", () => {
    const graph = documentToLiteGraph({ format: "maskflow-workflow", version: 1, nodes: [{ id: "1", type: "Int", inputs: { value: 3 } }] }, schemas);
    graph.nodes[0].widgets_values = [3.6];
    expect(liteGraphToDocument(graph, schemas).nodes[0].inputs).toEqual({ value: 4 });
  });
});

describe("a model named by text on Inpaint (workflows from before the MODEL socket)", () => {
  const byType = schemaMap(schemas);
  const inpaintInputs: WorkflowDocument["nodes"][number]["inputs"] = {
    image: ["1", "image"],
    mask: ["2", "mask"],
    prompt: ["3", "prompt"],
    scheduler: ["4", "scheduler"],
    backend: "local",
    samples: 1,
    width: 512,
    height: 512,
  };
  /** The shipped default graph's layout: the Inpaint has Prompt and Scheduler right beside it on its left. */
  const oldDocument = (model: string): WorkflowDocument => ({
    format: "maskflow-workflow",
    version: 1,
    nodes: [
      { id: "1", type: "LoadImage", inputs: { image: "examples/room.png" }, ui: { pos: [40, 60], size: [300, 330] } },
      { id: "2", type: "LoadMask", inputs: { image: "examples/room-mask.png", channel: "luminance" }, ui: { pos: [40, 430], size: [300, 120] } },
      { id: "3", type: "Prompt", inputs: { positive: "a plant", negative: "" }, ui: { pos: [380, 60], size: [340, 220] } },
      { id: "4", type: "Scheduler", inputs: { scheduler: "DDIM", steps: 25, guidance: 7.5, strength: 1, seed: 42 }, ui: { pos: [380, 320], size: [340, 190] } },
      { id: "5", type: "Inpaint", inputs: { ...inpaintInputs, model }, ui: { pos: [770, 60], size: [300, 330] } },
      { id: "6", type: "SaveImage", inputs: { images: ["5", "images"], filename_prefix: "inpaint" }, ui: { pos: [1110, 60], size: [360, 420] } },
    ],
  });
  const loaderSize = estimatedSize(byType.get("CheckpointLoader"));
  const boxOf = (node: WorkflowDocument["nodes"][number]): Box => {
    const size = node.ui!.size ?? loaderSize;
    return [node.ui!.pos![0], node.ui!.pos![1] - TITLE_HEIGHT, size[0], size[1] + TITLE_HEIGHT];
  };
  const apart = (a: Box, b: Box) => a[0] + a[2] <= b[0] || b[0] + b[2] <= a[0] || a[1] + a[3] <= b[1] || b[1] + b[3] <= a[1];

  it("Inpaint's model is a MODEL socket without a widget, and only a MODEL output fits it", () => {
    const inpaint = schemas.find((schema) => schema.type === "Inpaint")!;
    expect(inpaint.inputs.model).toMatchObject({ type: "MODEL", optional: true });
    expect(hasWidget(inpaint.inputs.model)).toBe(false);
    expect(canConnect("MODEL", "MODEL")).toBe(true);
    expect(canConnect("IMAGE", "MODEL")).toBe(false);
    expect(canConnect("STRING", "MODEL")).toBe(false);
    expect(SOCKET_COLOURS.MODEL).toMatch(/^#[0-9a-f]{6}$/);
    const graph = documentToLiteGraph(oldDocument(""), schemas);
    const slot = graph.nodes.find((node) => node.id === 5)!.inputs!.find((input) => input.name === "model")!;
    expect(slot).toEqual({ name: "model", type: "MODEL", link: null, label: "model (optional)" });
  });

  it("a name becomes a Load Checkpoint naming it, wired to the input and placed left of the node, covering none", () => {
    const { document, added, changed } = upgradeModelLiterals(oldDocument("my-model"), byType);
    expect(changed).toBe(true);
    expect(added).toEqual([{ loaderId: "7", targetId: "5", input: "model", checkpoint: "my-model" }]);
    const loader = document.nodes.find((node) => node.id === "7")!;
    expect(loader).toMatchObject({ type: "CheckpointLoader", inputs: { checkpoint: "my-model" } });
    expect(document.nodes.find((node) => node.id === "5")!.inputs).toEqual({ ...inpaintInputs, model: ["7", "model"] });
    // The rest is untouched.
    expect(document.nodes.filter((node) => node.id !== "5" && node.id !== "7")).toEqual(oldDocument("").nodes.filter((node) => node.id !== "5"));
    const inpaint = boxOf(document.nodes.find((node) => node.id === "5")!);
    const box = boxOf(loader);
    expect(box[0] + box[2]).toBeLessThanOrEqual(inpaint[0] - 20);
    for (const other of document.nodes.filter((node) => node.id !== "7")) expect(apart(box, boxOf(other)), `overlaps node ${other.id}`).toBe(true);

    // Through the converter: a link from the loader's MODEL output into Inpaint's model socket, and back the same.
    const graph = documentToLiteGraph(document, schemas);
    const target = graph.nodes.find((node) => node.id === 5)!;
    const modelSlot = target.inputs!.findIndex((input) => input.name === "model");
    const link = graph.links.find((entry) => entry[0] === target.inputs![modelSlot].link)!;
    expect(link.slice(1)).toEqual([7, 0, 5, modelSlot, "MODEL"]);
    expect(target.properties![HELD_INPUTS_PROPERTY]).toBeUndefined();
    expect(liteGraphToDocument(JSON.parse(JSON.stringify(graph)), schemas)).toEqual(document);
    // Once upgraded, nothing more to do.
    expect(upgradeModelLiterals(document, byType)).toMatchObject({ changed: false, added: [] });
  });

  it("an empty text meant the server's model: the input is left unlinked, no node is added", () => {
    const { document, added, changed } = upgradeModelLiterals(oldDocument(""), byType);
    expect([changed, added]).toEqual([true, []]);
    expect(document.nodes).toHaveLength(6);
    expect(document.nodes.find((node) => node.id === "5")!.inputs).toEqual(inpaintInputs);
    const back = liteGraphToDocument(documentToLiteGraph(document, schemas), schemas);
    expect(back.nodes.find((node) => node.id === "5")!.inputs).toEqual(inpaintInputs);
  });

  it("gives each node its own loader with a fresh id, never over the others; links and other ids stay as they were", () => {
    const base = oldDocument("first");
    const document: WorkflowDocument = {
      ...base,
      nodes: [
        ...base.nodes,
        { id: "12", type: "Inpaint", inputs: { ...inpaintInputs, model: "second.safetensors" }, ui: { pos: [770, 440], size: [300, 330] } },
        { id: "extra", type: "Int", inputs: { value: 3 } },
      ],
    };
    const upgraded = upgradeModelLiterals(document, byType);
    expect(upgraded.added.map(({ loaderId, targetId, checkpoint }) => [loaderId, targetId, checkpoint])).toEqual([
      ["13", "5", "first"],
      ["14", "12", "second.safetensors"],
    ]);
    const placed = upgraded.document.nodes.filter((node) => node.ui?.pos);
    for (const a of placed) for (const b of placed) if (a !== b) expect(apart(boxOf(a), boxOf(b)), `${a.id} overlaps ${b.id}`).toBe(true);
    expect(upgraded.document.nodes.find((node) => node.id === "12")!.inputs.model).toEqual(["14", "model"]);
    // The input document is not changed.
    expect(document.nodes.find((node) => node.id === "12")!.inputs.model).toBe("second.safetensors");
  });

  it("without a loader node on the server, the text is held and written back unchanged", () => {
    const older = new Map([...byType].filter(([type]) => type !== "CheckpointLoader"));
    const { document } = upgradeModelLiterals(oldDocument("my-model"), older);
    expect(document.nodes.find((node) => node.id === "5")!.inputs.model).toBe("my-model");
    const graph = documentToLiteGraph(document, schemas);
    expect(graph.nodes.find((node) => node.id === 5)!.properties![HELD_INPUTS_PROPERTY]).toEqual({ model: "my-model" });
    expect(liteGraphToDocument(graph, schemas)).toEqual(oldDocument("my-model"));
  });

  it("places a node left of its target: level with it when there is room, else the nearest free spot", () => {
    expect(placeLeftOf([500, 100, 300, 200], [340, 80], [])).toEqual([120, 130]);
    // A node right where it would go: it moves up or down rather than onto it.
    const blocker: Box = [100, 60, 360, 150];
    const [x, y] = placeLeftOf([500, 100, 300, 200], [340, 80], [blocker]);
    const box: Box = [x, y - TITLE_HEIGHT, 340, 80 + TITLE_HEIGHT];
    expect(apart(box, blocker)).toBe(true);
    expect(x + 340).toBeLessThanOrEqual(460);
  });
});
