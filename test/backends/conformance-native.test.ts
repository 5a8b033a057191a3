// The conformance suite on the native backend (f32) against the js reference, at the suite's own
// tolerances (they were set for this backend).

import { loadNativeBackend } from '../../src/backends/native/index.js';
import { nativeRequired } from '../helpers/backends.js';
import { conformance } from './conformance/index.js';

conformance('native', { make: () => loadNativeBackend(), required: nativeRequired() });
