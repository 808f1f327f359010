/**
 * Byte-pair merging of one word in O(n log n), with exactly the result of simple_tokenizer's
 * round-by-round loop (and Hugging Face's slow CLIPTokenizer), which rescans the whole word once per
 * merge rule applied and so costs O(n²) on long words (a 64,000-letter word took minutes).
 *
 * The reference loop, each round: take the lowest-ranked pair present anywhere in the word, merge
 * its occurrences left to right on the word as it was at the start of the round (an occurrence
 * that overlaps one just merged, as in "a a a", is skipped), repeat until no pair has a rank.
 *
 * Here the symbols form a linked list and every adjacent pair with a rank sits in a min-heap keyed
 * by (rank, position). A round pops every live entry of the lowest rank — in position order, so
 * left to right — before merging any of them, then merges those still intact. That is the reference
 * round: merging one occurrence changes only the two pairs around it, and a new pair can never have
 * the round's own rank (a rank is one pair of strings, and a pair containing the merged symbol is
 * longer on one side). New pairs enter the heap and compete from the next round on, whatever their
 * rank, as they do in the reference's next scan. Entries whose pair has changed since they were
 * pushed are recognised by looking the current pair's rank up again and dropped.
 */

/** Rank of the merge "left right", or undefined when the pair never merges. */
export type MergeRank = (left: string, right: string) => number | undefined;

// Heap keys pack (rank, position) into one double: ranks and positions each stay below 2^26 here.
const POSITION_SPAN = 2 ** 26;
export const MAX_BPE_SYMBOLS = POSITION_SPAN - 1;

export function mergeByRank(symbols: readonly string[], rankOf: MergeRank): string[] {
  const count = symbols.length;
  if (count < 2) return symbols.slice();
  if (count > MAX_BPE_SYMBOLS) throw new RangeError(`mergeByRank: ${count} symbols is more than ${MAX_BPE_SYMBOLS}`);
  const text = symbols.slice();
  const next = new Int32Array(count);
  const prev = new Int32Array(count);
  const alive = new Uint8Array(count).fill(1);
  for (let i = 0; i < count; i++) {
    next[i] = i + 1 < count ? i + 1 : -1;
    prev[i] = i - 1;
  }
  // Each merge pushes at most two pairs, and there are at most count − 1 merges.
  const heap = new MinHeap(3 * count);
  const push = (left: number): void => {
    const right = next[left];
    if (right < 0) return;
    const rank = rankOf(text[left], text[right]);
    if (rank === undefined) return;
    if (rank >= POSITION_SPAN) throw new RangeError(`mergeByRank: rank ${rank} is too large`);
    heap.push(rank * POSITION_SPAN + left);
  };
  const isPair = (left: number, rank: number): boolean =>
    alive[left] === 1 && next[left] >= 0 && rankOf(text[left], text[next[left]]) === rank;
  for (let i = 0; i < count - 1; i++) push(i);

  const round: number[] = [];
  while (heap.size > 0) {
    const key = heap.pop();
    const rank = Math.floor(key / POSITION_SPAN);
    const position = key - rank * POSITION_SPAN;
    if (!isPair(position, rank)) continue;
    const first = text[position];
    const second = text[next[position]];
    round.length = 0;
    round.push(position);
    while (heap.size > 0 && Math.floor(heap.peek() / POSITION_SPAN) === rank) {
      const other = heap.pop() - rank * POSITION_SPAN;
      if (other !== round[round.length - 1] && isPair(other, rank)) round.push(other);
    }
    for (const left of round) {
      const right = next[left];
      // Skipped when an earlier merge of this round took one of its two symbols.
      if (alive[left] === 0 || right < 0 || text[left] !== first || text[right] !== second) continue;
      text[left] = first + second;
      alive[right] = 0;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      if (prev[left] >= 0) push(prev[left]);
      push(left);
    }
  }
  const merged: string[] = [];
  for (let i = 0; i >= 0; i = next[i]) merged.push(text[i]);
  return merged;
}

/** A binary min-heap of doubles with a fixed capacity. */
class MinHeap {
  readonly #items: Float64Array;
  size = 0;

  constructor(capacity: number) {
    this.#items = new Float64Array(Math.max(1, capacity));
  }

  peek(): number {
    return this.#items[0];
  }

  push(value: number): void {
    const items = this.#items;
    let at = this.size++;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (items[parent] <= value) break;
      items[at] = items[parent];
      at = parent;
    }
    items[at] = value;
  }

  pop(): number {
    const items = this.#items;
    const top = items[0];
    const last = items[--this.size];
    let at = 0;
    for (;;) {
      let child = 2 * at + 1;
      if (child >= this.size) break;
      if (child + 1 < this.size && items[child + 1] < items[child]) child++;
      if (items[child] >= last) break;
      items[at] = items[child];
      at = child;
    }
    items[at] = last;
    return top;
  }
}
