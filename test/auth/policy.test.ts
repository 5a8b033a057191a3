// Who may see, use and manage which adapters.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError } from '../../src/serve/auth/errors.js';
import {
  LOCAL_ADMIN,
  type Principal,
  canManage,
  canUse,
  listTenant,
  modelNotFound,
  requireAdmin,
  uploadOwner,
  visible,
} from '../../src/serve/auth/policy.js';

const t1: Principal = { keyId: 'a', tenant: 't1', role: 'tenant' };
const admin: Principal = { keyId: 'b', tenant: 'admin', role: 'admin' };
const items = [
  { name: 'mine', owner: 't1' },
  { name: 'theirs', owner: 't2' },
  { name: 'shared', owner: null },
];

test('a tenant uses its own and the owner-less, manages only its own; an admin everything', () => {
  assert.deepEqual(
    visible(t1, items).map((i) => i.name),
    ['mine', 'shared'],
  );
  assert.deepEqual(
    items.map((i) => [canUse(t1, i.owner), canManage(t1, i.owner)]),
    [
      [true, true],
      [false, false],
      [true, false],
    ],
  );
  for (const p of [admin, LOCAL_ADMIN]) assert.ok(items.every((i) => canUse(p, i.owner) && canManage(p, i.owner)));
  assert.equal(listTenant(t1), 't1');
  assert.equal(listTenant(admin), undefined);
  assert.throws(
    () => requireAdmin(t1, 'creating keys'),
    (e: ApiError) => e.status === 403 && /admin key/.test(e.message),
  );
  requireAdmin(admin, 'creating keys');
  const nf = modelNotFound('theirs');
  assert.deepEqual(
    [nf.status, nf.message, nf.code, nf.param],
    [404, 'The model `theirs` does not exist.', 'model_not_found', 'model'],
  );
});

test('upload owner: a tenant uploads as itself; an admin keeps the owner unless it names one', () => {
  assert.deepEqual(uploadOwner(t1, undefined, null), { owner: 't1', replaceOwner: false });
  assert.deepEqual(uploadOwner(t1, 't1', { owner: 't1' }), { owner: 't1', replaceOwner: false });
  assert.throws(
    () => uploadOwner(t1, 't2', null),
    (e: ApiError) => e.status === 403 && e.param === 'owner',
  );
  assert.throws(
    () => uploadOwner(t1, '', null),
    (e: ApiError) => e.status === 403,
  );
  assert.deepEqual(uploadOwner(admin, undefined, { owner: 't2' }), { owner: 't2', replaceOwner: false });
  assert.deepEqual(uploadOwner(admin, undefined, null), { owner: null, replaceOwner: false });
  assert.deepEqual(uploadOwner(admin, 't3', { owner: 't2' }), { owner: 't3', replaceOwner: true });
  assert.deepEqual(uploadOwner(admin, '', { owner: 't2' }), { owner: null, replaceOwner: true });
});
