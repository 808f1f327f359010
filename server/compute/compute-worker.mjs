// The file each compute worker thread starts from. Node runs no .ts file in a worker by itself, so
// this plain module registers tsx in the thread first and then hands piscina the TypeScript task table.
import { register } from "tsx/esm/api";

register();
const { runComputeTask } = await import("./compute-tasks.ts");

export default runComputeTask;
