/** Every string reachable from `value`: own properties (also non-enumerable ones such as an Error's message and stack), array items, map entries. */
export function strings(value: unknown, out: string[] = [], seen = new Set<unknown>(), depth = 0): string[] {
  if (typeof value === "string") out.push(value);
  if (typeof value !== "object" || value === null || seen.has(value) || depth > 40) return out;
  seen.add(value);
  if (value instanceof Map) for (const [k, v] of value) strings([k, v], out, seen, depth + 1);
  for (const key of Object.getOwnPropertyNames(value)) {
    const desc = Object.getOwnPropertyDescriptor(value, key);
    if (desc && "value" in desc) strings(desc.value, out, seen, depth + 1);
  }
  return out;
}
