// Errors of file input/output. Every one names the file it is about (and the key or tensor inside it
// when there is one), so a failure while loading a 30-file checkpoint says which file and entry.

export interface IoErrorDetails {
  /** The file (or directory) at fault, as the caller named it. */
  file: string;
  /** The entry inside the file: a tensor name, a JSON key. */
  key?: string;
  cause?: unknown;
}

/** A file could not be read or written, or its contents are malformed. */
export class IoError extends Error {
  override name = 'IoError';
  readonly file: string;
  readonly key?: string;

  constructor(message: string, details: IoErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.file = details.file;
    if (details.key !== undefined) this.key = details.key;
  }
}

/** A .safetensors file is malformed, or a tensor in it cannot be read as asked. */
export class SafetensorsError extends IoError {
  override name = 'SafetensorsError';
  /** The tensor at fault, when the error concerns one. */
  readonly tensor?: string;

  constructor(message: string, details: { file: string; tensor?: string; cause?: unknown }) {
    super(message, { file: details.file, key: details.tensor, cause: details.cause });
    if (details.tensor !== undefined) this.tensor = details.tensor;
  }
}

/** The message of an unknown thrown value (fs errors carry a code such as ENOENT). */
export function describeError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    return code && !e.message.startsWith(code) ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}
