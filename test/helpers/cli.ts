// Runs `vera <command>` as a child process, asynchronously, so that independent runs overlap (each
// pays node's start-up); one kernel thread each keeps overlapping runs from oversubscribing the cores.

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../../bin/vera.js', import.meta.url));

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

export function runVera(command: string, args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    const env = { ...process.env, VERA_DEBUG: '' };
    const argv = [BIN, command, ...args, '--threads', '1'];
    execFile(process.execPath, argv, { encoding: 'utf8', env }, (err, stdout, stderr) => {
      const code = err ? (err as { code?: unknown }).code : 0;
      resolve({ status: typeof code === 'number' ? code : -1, stdout, stderr });
    });
  });
}
