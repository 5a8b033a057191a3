// Where JSON text stops being valid. V8's JSON.parse messages do not always carry a position
// ("Unexpected token ']', ..."x",]" is not valid JSON"), so on the error path the text is re-read by
// this small iterative checker (no recursion: nesting depth cannot overflow the stack).

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPES = new Set(['"', '\\', '/', 'b', 'f', 'n', 'r', 't']);
const HEX4 = /^[0-9a-fA-F]{4}$/;

/** The offset of the first character that makes `text` invalid JSON (text.length if it ends early), or -1 if valid. */
export function jsonSyntaxErrorOffset(text: string): number {
  const n = text.length;
  let i = 0;
  const containers: ('{' | '[')[] = [];

  const ws = (): void => {
    for (let c = text.charCodeAt(i); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = text.charCodeAt(++i));
  };
  const str = (): boolean => {
    if (text[i] !== '"') return false;
    for (i++; i < n;) {
      const ch = text[i]!;
      if (ch === '"') {
        i++;
        return true;
      }
      if (ch.charCodeAt(0) < 0x20) return false;
      if (ch !== '\\') i++;
      else if (ESCAPES.has(text[i + 1] ?? '')) i += 2;
      else if (text[i + 1] === 'u' && HEX4.test(text.slice(i + 2, i + 6))) i += 6;
      else return false;
    }
    return false;
  };
  const key = (): boolean => {
    ws();
    if (!str()) return false;
    ws();
    if (text[i] !== ':') return false;
    i++;
    return true;
  };
  /** One scalar or empty container, or the openings of nested containers (pushed); false at an invalid character. */
  const valueStart = (): boolean => {
    for (;;) {
      ws();
      const ch = text[i];
      if (ch !== '{' && ch !== '[') break;
      i++;
      ws();
      if (text[i] === (ch === '{' ? '}' : ']')) {
        i++;
        return true;
      }
      containers.push(ch);
      if (ch === '{' && !key()) return false;
    }
    if (text[i] === '"') return str();
    for (const word of ['true', 'false', 'null']) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return true;
      }
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) return false;
    i += m[0].length;
    return true;
  };

  if (!valueStart()) return i;
  for (;;) {
    ws();
    const top = containers[containers.length - 1];
    if (top === undefined) return i === n ? -1 : i;
    const ch = text[i];
    if (ch === ',') {
      i++;
      if ((top === '{' && !key()) || !valueStart()) return i;
    } else if (ch === (top === '{' ? '}' : ']')) {
      i++;
      containers.pop();
    } else return i;
  }
}
