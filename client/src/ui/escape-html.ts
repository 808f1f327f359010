/** Text made safe to put inside HTML markup (file names and server messages shown in the panels). */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
