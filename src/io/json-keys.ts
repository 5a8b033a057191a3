// A light scan of JSON text that JSON.parse has already accepted: the top-level keys in the order they
// appear (a parsed object puts integer-like keys such as "0" first), and the first duplicate key at any
// depth (JSON.parse silently keeps the last one, safetensors forbids them).

export interface DuplicateKey {
  key: string;
  /** Keys leading from the top-level object to the object holding the duplicate ([] at the top). */
  path: string[];
  /** Character offset of the second occurrence. */
  pos: number;
}

export interface KeyScan {
  topKeys: string[];
  duplicate: DuplicateKey | null;
}

/** The keys seen in one object: a short list (most objects have a few keys), a Set once it grows. */
class KeySet {
  #list: string[] = [];
  #set: Set<string> | null = null;

  /** Adds the key; false when it was already there. */
  add(key: string): boolean {
    if (this.#set) {
      if (this.#set.has(key)) return false;
      this.#set.add(key);
      return true;
    }
    if (this.#list.includes(key)) return false;
    this.#list.push(key);
    if (this.#list.length > 16) this.#set = new Set(this.#list);
    return true;
  }
}

interface Frame {
  keys: KeySet | null; // null for arrays
  name: string | null;
  expectKey: boolean;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Scans valid JSON text (see the file comment); the result is unspecified for invalid JSON. */
export function scanObjectKeys(text: string): KeyScan {
  const topKeys: string[] = [];
  const stack: Frame[] = [];
  let lastKey: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const raw = text.slice(i + 1, end);
        const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        if (!top.keys.add(key)) return { topKeys, duplicate: { key, path: pathOf(stack), pos: i } };
        if (stack.length === 1) topKeys.push(key);
        top.expectKey = false;
        lastKey = key;
      }
      i = end;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const parent = stack[stack.length - 1];
      const name = parent?.keys ? lastKey : null;
      stack.push({ keys: c === 0x7b ? new KeySet() : null, name, expectKey: c === 0x7b });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    }
  }
  return { topKeys, duplicate: null };
}

/** Index of the quote closing the string that opens at `start`. */
function stringEnd(text: string, start: number): number {
  let j = text.indexOf('"', start + 1);
  while (j !== -1) {
    let backslashes = 0;
    for (let k = j - 1; text.charCodeAt(k) === BACKSLASH; k--) backslashes++;
    if (backslashes % 2 === 0) return j;
    j = text.indexOf('"', j + 1);
  }
  return text.length;
}

function pathOf(stack: readonly Frame[]): string[] {
  return stack.slice(1).flatMap((f) => (f.name === null ? [] : [f.name]));
}
