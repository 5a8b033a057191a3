// `vera keys add|list|revoke`: API keys in the store a server reads with --store. A key's text is shown
// once, by `add`; the store keeps only its sha256.

import { ApiKeys } from '../serve/auth/keys.js';
import { openStore } from '../serve/store/index.js';
import { parseArgs, parseCommandArgs, writeOut } from './common.js';

export const KEYS_USAGE = `Usage: vera keys <add|list|revoke> [options]

  vera keys add --tenant TENANT [--admin] --store SPEC     prints the new key (shown only now)
  vera keys list --store SPEC [--json]
  vera keys revoke ID --store SPEC

A key authenticates as its tenant: it sees and uses the tenant's adapters and those without an owner.
An admin key manages every adapter and the keys. VERA_ADMIN_KEY, when set, is stored as an admin key
by vera serve at start-up.

Options:
  --store SPEC       A folder of adapters, sqlite:FILE or postgres://… (default: $VERA_STORE)
  --tenant TENANT    The tenant the key belongs to (default for --admin: admin)
  --admin            An admin key
  --json             JSON output
`;

export async function keysCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('keys', () =>
    parseArgs({
      args,
      options: {
        store: { type: 'string' },
        tenant: { type: 'string' },
        admin: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    }),
  );
  const [sub, ...rest] = positionals;
  if (values.help || sub === undefined) {
    await writeOut(KEYS_USAGE);
    return values.help ? 0 : 2;
  }
  const want = { add: 0, list: 0, revoke: 1 }[sub];
  if (want === undefined) throw new Error(`unknown subcommand "${sub}" (add, list or revoke; see vera keys --help)`);
  if (rest.length !== want)
    throw new Error(`vera keys ${sub} takes ${want ? 'ID' : 'no arguments'} (see vera keys --help)`);
  const spec = values.store ?? process.env['VERA_STORE'];
  if (!spec) throw new Error('--store is required (a folder, sqlite:FILE or postgres://…; or set VERA_STORE)');
  const store = await openStore(spec);
  const keys = new ApiKeys(store.keys);
  try {
    if (sub === 'add') {
      const tenant = values.tenant ?? (values.admin ? 'admin' : undefined);
      if (tenant === undefined) throw new Error('--tenant is required (see vera keys --help)');
      const made = await keys.create({ tenant, role: values.admin ? 'admin' : 'tenant' });
      await writeOut(values.json ? `${JSON.stringify({ ...made.info, key: made.key })}\n` : `${made.key}\n`);
      if (!values.json)
        process.stderr.write(`key ${made.info.id} for tenant ${tenant} (${made.info.role}); it is not shown again\n`);
    } else if (sub === 'list') {
      const all = await keys.list();
      const text = all.map((k) =>
        values.json
          ? JSON.stringify(k)
          : `${k.id}\t${k.tenant}\t${k.role}\t${new Date(k.createdAt).toISOString()}\t${k.revokedAt === null ? 'active' : `revoked ${new Date(k.revokedAt).toISOString()}`}`,
      );
      await writeOut(text.join('\n') + (all.length ? '\n' : ''));
    } else {
      if (!(await keys.revoke(rest[0]!))) throw new Error(`no key with id "${rest[0]}" in ${store.spec}`);
      await writeOut(`revoked ${rest[0]}\n`);
    }
  } finally {
    await store.close();
  }
  return 0;
}
