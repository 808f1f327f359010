/** A picture at full size over the page; click, Esc or the × closes it. Keys stay off the graph while it is open. */

export function openImageViewer(url: string): void {
  const overlay = document.createElement("div");
  overlay.className = "mf-viewer";
  overlay.dataset.testid = "image-viewer";
  const image = document.createElement("img");
  image.src = url.replace(/&t=\d+$/, "");
  const bar = document.createElement("div");
  bar.className = "mf-viewer-bar";
  const open = document.createElement("a");
  open.href = image.src;
  open.target = "_blank";
  open.textContent = "open in new tab";
  const close = document.createElement("button");
  close.textContent = "×";
  bar.append(open, close);
  overlay.append(image, bar);
  const remove = () => {
    overlay.remove();
    window.removeEventListener("keydown", onKey, true);
  };
  const onKey = (event: KeyboardEvent) => {
    // Delete or Ctrl+V would otherwise act on the graph hidden behind the picture.
    event.stopPropagation();
    if (event.key === "Escape") remove();
  };
  overlay.addEventListener("click", (event) => {
    if (event.target !== open) remove();
  });
  window.addEventListener("keydown", onKey, true);
  document.body.append(overlay);
}
