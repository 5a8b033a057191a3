#!/usr/bin/env node
// The `vera` command: runs the compiled CLI (npm run build compiles it to dist/).
import('../dist/src/cli/main.js').catch((e) => {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('vera: the TypeScript build is missing; run "npm run build" first');
    process.exit(1);
  }
  throw e;
});
