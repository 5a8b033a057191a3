// The vera-ts package's root directory (package.json, assets/, docs/), from this module's place in the
// build (dist/src/io/package-root.js): where the shipped base model and the documents are found.

import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_ROOT: string = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
