/**
 * What a Load Checkpoint or Load LoRA combo offers: the server's names (GET /api/models/checkpoints, /loras), in the
 * server's order. Asked when the editor starts and again whenever a combo opens, so a file dropped into the models
 * folder shows up without a reload. Asks made while one is under way share it.
 */
export class ServerChoices {
  #names: string[] = [];
  #pending: Promise<void> | undefined;

  constructor(private readonly fetchList: () => Promise<string[]>) {}

  /** Fetches the list; a failure (the server away, an older server) keeps the last one. */
  refresh(): Promise<void> {
    this.#pending ??= this.fetchList()
      .then(
        (names) => {
          this.#names = names.filter((name) => typeof name === "string");
        },
        () => {
          // keep what we had
        },
      )
      .finally(() => {
        this.#pending = undefined;
      });
    return this.#pending;
  }

  list(): string[] {
    return [...this.#names];
  }
}

/** A combo's entries: the server's, with a value it does not list (a workflow from elsewhere) kept first so it stays choosable. */
export function choicesWithCurrent(choices: readonly string[], current: string): string[] {
  return current && !choices.includes(current) ? [current, ...choices] : [...choices];
}
