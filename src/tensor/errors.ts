// Typed errors of the tensor engine. Messages start with an [op] tag and name the shapes involved,
// so a failure deep inside a model says which operation and which operands were at fault.

export class ShapeError extends Error {
  override name = 'ShapeError';
}

export class DTypeError extends Error {
  override name = 'DTypeError';
}

/** A tensor (or its storage) was used after dispose(). */
export class DisposedError extends Error {
  override name = 'DisposedError';
}

/** backward() through a graph whose saved tensors were already released. */
export class GraphFreedError extends Error {
  override name = 'GraphFreedError';
}

export class DeviceError extends Error {
  override name = 'DeviceError';
}

/** Formats a shape as (2, 3, 4), the way error messages print it. */
export function fmtShape(shape: readonly number[]): string {
  return `(${shape.join(', ')})`;
}
