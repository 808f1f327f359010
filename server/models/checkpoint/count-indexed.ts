/**
 * How many consecutive indices `<prefix>0.`, `<prefix>1.`, … the names hold, from 0: a checkpoint's block and layer
 * counts (down levels, ResNets per level, transformer layers) are read this way from its key names.
 */
export function countIndexed(names: Iterable<string>, prefix: string): number {
  const seen = new Set<number>();
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const index = Number(name.slice(prefix.length).split(".")[0]);
    if (Number.isInteger(index)) seen.add(index);
  }
  let count = 0;
  while (seen.has(count)) count++;
  return count;
}
