/**
 * Pairs the pictures of a batch's folders by file name without extension (photos/cat.jpg with
 * masks/cat.png), as IOPaint's `run --image DIR --mask DIR` does. A picture without a partner in every
 * other folder, or a name given by two files of one folder, is an unmatched entry with the reason:
 * reported, never dropped in silence.
 */
import type { FolderPicture } from "./folder-pictures.ts";

export interface BatchFolder {
  /** The input it feeds (`1.image`). */
  readonly key: string;
  /** How the folder is named in messages. */
  readonly label: string;
  readonly pictures: readonly FolderPicture[];
}

export interface BatchItem {
  readonly stem: string;
  /** Per input key, the picture for this item. */
  readonly files: Readonly<Record<string, FolderPicture>>;
}

export interface UnmatchedStem {
  readonly stem: string;
  readonly reason: string;
}

export interface BatchPairing {
  /** In name order, numbers by value (2 before 10). */
  readonly items: readonly BatchItem[];
  readonly unmatched: readonly UnmatchedStem[];
}

const byName = new Intl.Collator("en", { numeric: true });

export function pairByStem(folders: readonly BatchFolder[]): BatchPairing {
  const stems = [...new Set(folders.flatMap((folder) => folder.pictures.map((picture) => picture.stem)))].sort(byName.compare);
  const items: BatchItem[] = [];
  const unmatched: UnmatchedStem[] = [];
  for (const stem of stems) {
    const files: Record<string, FolderPicture> = {};
    const reasons: string[] = [];
    const missing: string[] = [];
    const present: string[] = [];
    for (const folder of folders) {
      const found = folder.pictures.filter((picture) => picture.stem === stem);
      if (found.length === 0) missing.push(folder.label);
      else if (found.length > 1) {
        reasons.push(`${folder.label} holds ${found.length} pictures named ${stem}: ${found.map((p) => p.name).sort(byName.compare).join(", ")}; keep one`);
      } else {
        files[folder.key] = found[0];
        present.push(`${folder.label.replace(/\/+$/, "")}/${found[0].name}`);
      }
    }
    if (missing.length) {
      reasons.unshift(`${present.join(", ") || stem} has no partner in ${missing.join(" and ")} (no picture named ${stem}.*)`);
    }
    if (reasons.length) unmatched.push({ stem, reason: reasons.join("; ") });
    else items.push({ stem, files });
  }
  return { items, unmatched };
}
