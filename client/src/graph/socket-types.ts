/**
 * Socket rules shared by the editor and the converter: which output may feed which input, which
 * inputs carry a widget, and the colour of each socket type.
 */
import type { InputSpec } from "../../../nodes/node-definition.ts";

/** Types a user may type in as a widget value (the server's LITERAL_SOCKET_TYPES). */
const LITERAL_TYPES: ReadonlySet<string> = new Set(["INT", "FLOAT", "STRING", "BOOLEAN", "SEED"]);

/** Same rule as the server's validator: the same type, or an INT into a FLOAT or a SEED. */
export function canConnect(outputType: string, inputType: string): boolean {
  return outputType === inputType || (outputType === "INT" && (inputType === "FLOAT" || inputType === "SEED"));
}

/** An input that shows a widget (and also takes a link); the others take links only. */
export function hasWidget(spec: InputSpec): boolean {
  return spec.widget !== undefined && LITERAL_TYPES.has(spec.type);
}

export const SOCKET_COLOURS: Readonly<Record<string, string>> = {
  IMAGE: "#64b5f6",
  MASK: "#81c784",
  PROMPT: "#ffb74d",
  SCHEDULER: "#ba68c8",
  MODEL: "#b39ddb",
  INT: "#4dd0e1",
  FLOAT: "#aed581",
  STRING: "#fff176",
  BOOLEAN: "#f48fb1",
  SEED: "#ff8a65",
};
