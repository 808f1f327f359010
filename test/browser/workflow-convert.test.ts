import { describe, expect, it } from "vitest";
import { createBuiltinRegistry } from "../../nodes/index.ts";
import type { WorkflowDocument } from "../../server/workflow/workflow-document.ts";
import {
  DOCUMENT_NODE_PROPERTY,
  documentToLiteGraph,
  HELD_INPUTS_PROPERTY,
  liteGraphToDocument,
} from "../../client/src/graph/workflow-convert.ts";

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
