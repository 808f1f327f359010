/** Short messages in the corner, and the banner that says the server is away. */

export function notify(message: string, kind: "info" | "error" | "success" = "info", ms = 4000): void {
  let stack = document.querySelector<HTMLDivElement>(".mf-notices");
  if (!stack) {
    stack = document.createElement("div");
    stack.className = "mf-notices";
    document.body.append(stack);
  }
  const notice = document.createElement("div");
  notice.className = `mf-notice mf-notice-${kind}`;
  notice.textContent = message;
  notice.addEventListener("click", () => notice.remove());
  stack.append(notice);
  setTimeout(() => notice.remove(), kind === "error" ? ms * 2 : ms);
}

export function showConnection(state: { connected: boolean; retryInMs?: number }): void {
  const banner = document.querySelector<HTMLDivElement>("#connection-banner")!;
  document.body.classList.toggle("mf-offline", !state.connected);
  banner.hidden = state.connected;
  if (!state.connected) {
    const seconds = Math.max(1, Math.round((state.retryInMs ?? 1000) / 1000));
    banner.textContent = `Server unreachable: reconnecting in ${seconds} s… (your graph is kept in this browser)`;
  }
}
