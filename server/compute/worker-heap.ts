/**
 * A compute worker's own heap, collected once a task has left much garbage in it. A 12 MB body with a million
 * keys leaves a few hundred megabytes of dead objects in the worker that parsed it; V8 collects them only when that
 * worker next needs room, and the worker may then sit idle for the 30 s before piscina ends it (measured: three
 * such bodies took the server from 320 to 680 MB, which a full collection of the worker brings back to 330).
 * Collected in the task itself: between tasks a piscina worker waits on Atomics and runs no callbacks. It costs
 * the worker's time, not the event loop's.
 */
import v8 from "node:v8";
import vm from "node:vm";

let collect: (() => void) | undefined;

/** A full collection of this thread's heap, now. */
export function collectGarbage(): void {
  if (!collect) {
    // --expose-gc set at run time exposes gc to contexts made after it; the thread's own global stays as it was.
    v8.setFlagsFromString("--expose-gc");
    collect = vm.runInNewContext("gc") as () => void;
  }
  collect();
}
