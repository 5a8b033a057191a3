// `vera adapters push|list|rm`: the adapter store from the command line (the store a server reads with
// --store). push validates the adapter as every put does (its structure; with --model also by loading
// it onto that base exactly as serving does), then stores it as a new version; with --url and --key it
// uploads to a running server instead (POST /v1/adapters), which validates against its own base.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type AdapterFiles, type AdapterInfo, ADAPTER_FILES, openStore } from '../serve/store/index.js';
import { baseModelValidator } from '../serve/store/validate.js';
import { LOCAL_ADMIN, uploadOwner } from '../serve/auth/policy.js';
import {
  backendHelp,
  deviceHelp,
  parseArgs,
  parseCommandArgs,
  selectBackend,
  threadsHelp,
  writeOut,
} from './common.js';

export const ADAPTERS_USAGE = `Usage: vera adapters <push|list|rm> [options]

  vera adapters push NAME DIR --store SPEC [--owner TENANT] [--model DIR]
  vera adapters push NAME DIR --url URL --key KEY [--owner TENANT]
  vera adapters list --store SPEC [--tenant TENANT] [--json]
  vera adapters rm NAME --store SPEC

push stores DIR's adapter_config.json and adapter_model.safetensors as the new version of NAME (the
old version stays readable until the next push); a bad adapter is refused with the reason and nothing
is stored.

Options:
  --store SPEC       A folder of adapters, sqlite:FILE or postgres://… (default: $VERA_STORE)
  --owner TENANT     The tenant that owns it ('' for none: every tenant may use it; default: the
                     owner it has, none for a new adapter)
  --model DIR        Also check the adapter by loading it onto this base model, as vera serve does
  --url URL          Upload to a running vera serve instead (POST URL/v1/adapters)
  --key KEY          The API key for --url (default: $VERA_API_KEY)
  --tenant TENANT    list: only what TENANT may use (its own and the owner-less)
  --json             list: JSON lines
${backendHelp(21)}${deviceHelp(21)}${threadsHelp(21)}  (--backend, --device and --threads apply to --model's check)
`;

function readAdapterDir(dir: string): AdapterFiles {
  const files = {} as AdapterFiles;
  for (const f of ADAPTER_FILES) {
    try {
      files[f] = readFileSync(join(dir, f));
    } catch (e) {
      throw new Error(`${join(dir, f)}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
        cause: e,
      });
    }
  }
  return files;
}

function line(a: AdapterInfo): string {
  return `${a.name}\tv${a.version}\t${a.owner ?? '-'}\t${a.bytes} bytes\t${new Date(a.createdAt).toISOString()}`;
}

export async function adaptersCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('adapters', () =>
    parseArgs({
      args,
      options: {
        store: { type: 'string' },
        owner: { type: 'string' },
        model: { type: 'string' },
        url: { type: 'string' },
        key: { type: 'string' },
        tenant: { type: 'string' },
        json: { type: 'boolean', default: false },
        backend: { type: 'string' },
        device: { type: 'string' },
        threads: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    }),
  );
  const [sub, ...rest] = positionals;
  if (values.help || sub === undefined) {
    await writeOut(ADAPTERS_USAGE);
    return values.help ? 0 : 2;
  }
  const want = { push: 2, list: 0, rm: 1 }[sub];
  if (want === undefined) throw new Error(`unknown subcommand "${sub}" (push, list or rm; see vera adapters --help)`);
  if (rest.length !== want)
    throw new Error(
      `vera adapters ${sub} takes ${['no arguments', 'NAME', 'NAME DIR'][want]} (see vera adapters --help)`,
    );
  if (sub === 'push' && values.url !== undefined) return pushOverHttp(rest[0]!, rest[1]!, values);
  const spec = values.store ?? process.env['VERA_STORE'];
  if (!spec) throw new Error('--store is required (a folder, sqlite:FILE or postgres://…; or set VERA_STORE)');
  const checkModel = sub === 'push' && values.model !== undefined;
  if (checkModel) selectBackend(values.backend, values.threads, values.device);
  const validator = checkModel ? baseModelValidator(values.model!) : undefined;
  const store = await openStore(spec, validator ? { validate: validator } : {});
  try {
    if (sub === 'push') {
      const [name, dir] = rest as [string, string];
      // As an admin upload: the owner stays unless --owner names one ('' for none).
      const existing = await store.get(name);
      const { owner, replaceOwner } = uploadOwner(LOCAL_ADMIN, values.owner, existing);
      const info = await store.put(name, readAdapterDir(dir), owner, { replaceOwner });
      await writeOut(
        values.json
          ? `${JSON.stringify(info)}\n`
          : `stored ${name} version ${info.version} (${info.bytes} bytes) in ${store.spec}\n`,
      );
    } else if (sub === 'list') {
      const all = await store.list(values.tenant);
      await writeOut(all.map((a) => (values.json ? JSON.stringify(a) : line(a))).join('\n') + (all.length ? '\n' : ''));
    } else {
      if (!(await store.remove(rest[0]!))) throw new Error(`no adapter "${rest[0]}" in ${store.spec}`);
      await writeOut(`removed ${rest[0]}\n`);
    }
  } finally {
    await store.close();
    validator?.close();
  }
  return 0;
}

async function pushOverHttp(
  name: string,
  dir: string,
  values: { url?: string; key?: string; owner?: string; json?: boolean },
): Promise<number> {
  const files = readAdapterDir(dir);
  const form = new FormData();
  form.append('name', name);
  if (values.owner !== undefined) form.append('owner', values.owner);
  for (const f of ADAPTER_FILES) form.append(f, new Blob([files[f]]), f);
  const key = values.key ?? process.env['VERA_API_KEY'];
  const url = `${values.url!.replace(/\/+$/, '')}/v1/adapters`;
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', body: form, headers: key ? { authorization: `Bearer ${key}` } : {} });
  } catch (e) {
    throw new Error(`${url}: ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`, { cause: e });
  }
  const body = (await res.json().catch(() => ({}))) as { error?: { message?: string }; version?: number };
  if (!res.ok) throw new Error(`${url}: ${res.status} ${body.error?.message ?? res.statusText}`);
  await writeOut(
    values.json ? `${JSON.stringify(body)}\n` : `stored ${name} version ${body.version} on ${values.url}\n`,
  );
  return 0;
}
