// Runs a graph built in a test the way the engine runs a model: written to a folder (model.onnx, weights in
// model.onnx_data) and opened from there by onnxruntime.
import path from "node:path";
import * as ort from "onnxruntime-node";
import type { OnnxGraphBuilder } from "../../server/engines/onnx/graph/onnx-graph-builder.ts";

export async function writeAndOpenGraph(
  g: OnnxGraphBuilder,
  dir: string,
  sessionOptions: ort.InferenceSession.SessionOptions,
): Promise<ort.InferenceSession> {
  await g.writeModel(dir, { opsetVersion: 17, producerName: "maskflow-test", externalDataFile: "model.onnx_data" });
  return ort.InferenceSession.create(path.join(dir, "model.onnx"), sessionOptions);
}
