// `vera` command-line entry: dispatches to one file per subcommand. Errors print one line (the
// message names the op, file or key at fault) and exit with status 1; --help works everywhere.

import { backendHelp, deviceHelp, exitFlushed, threadsHelp, writeOut } from './common.js';
import { demoCommand } from './demo.js';
import { logitsCommand } from './logits.js';

const USAGE = `Usage: vera <command> [options]

Commands:
  demo      Fine-tune the shipped base model on UCI sentiment with VeRA, LoRA and head-only; print a table
  logits    Print the logits of one example (a model, optionally with a PEFT adapter) as JSON
  generate  Generate text with a causal LM (optionally with a PEFT adapter), streamed to stdout
  classify  Classify a text or an image, printing labels with probabilities
  train     Fine-tune a model (VeRA, LoRA, head or full) with checkpoints and --resume
  eval      Evaluate a model (optionally with a PEFT adapter) on labelled data, printing metrics as JSON
  merge     Merge a PEFT adapter into its base model and save a plain model directory
  inspect   Describe an adapter, model, checkpoint or training run directory
  serve     Serve many adapters on one base model over HTTP, mixed-adapter batches
  adapters  Push, list and remove adapters in a store (folder, sqlite:FILE, postgres://…)
  keys      Add, list and revoke API keys in a store
  help      Show this help

Global options:
${backendHelp(28)}${deviceHelp(28)}${threadsHelp(28)}  -h, --help                Show help for a command

Flags may be spelled with underscores or dashes (--label_names or --label-names); help shows underscores.
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    await writeOut(USAGE);
    return 0;
  }
  if (command === 'demo') return demoCommand(rest);
  if (command === 'logits') return logitsCommand(rest);
  // Loaded on demand: tokenizers, chat templates and image decoding stay out of the other commands' start-up.
  if (command === 'generate') return (await import('./generate.js')).generateCommand(rest);
  if (command === 'classify') return (await import('./classify.js')).classifyCommand(rest);
  if (command === 'train') return (await import('./train.js')).trainCommand(rest);
  if (command === 'eval') return (await import('./eval.js')).evalCommand(rest);
  if (command === 'merge') return (await import('./merge.js')).mergeCommand(rest);
  if (command === 'inspect') return (await import('./inspect.js')).inspectCommand(rest);
  if (command === 'serve') return (await import('./serve.js')).serveCommand(rest);
  if (command === 'adapters') return (await import('./adapters.js')).adaptersCommand(rest);
  if (command === 'keys') return (await import('./keys.js')).keysCommand(rest);
  process.stderr.write(`vera: unknown command "${command}"\n\n${USAGE}`); // flushed by exitFlushed
  return 2;
}

// Every exit waits for stdout and stderr to drain: a pipe reader gets the whole output.
main(process.argv.slice(2)).then(
  (code) => exitFlushed(code),
  (e: unknown) => {
    process.stderr.write(`vera: ${e instanceof Error ? e.message : String(e)}\n`);
    if (process.env['VERA_DEBUG']) console.error(e);
    return exitFlushed(1);
  },
);
