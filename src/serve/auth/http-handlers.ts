// The key routes, as functions the server mounts (admin keys only; each returns the reply or throws an
// ApiError / StoreError, which errorReply() turns into OpenAI's error shape):
//
//   POST   /v1/keys       {"tenant": T, "role"?: "tenant"|"admin"}  → 201 {id, object: "api_key", key, …}
//                        (the key text appears in this answer only)
//   GET    /v1/keys       → {object: "list", data: [{id, object, tenant, role, created, revoked}]}
//   DELETE /v1/keys/ID    → {id, object: "api_key", revoked: true}; 404 for an unknown id

import type { IncomingMessage } from 'node:http';
import { ApiError, type ApiReply, readJsonObject } from './errors.js';
import type { ApiKeys, KeyInfo } from './keys.js';
import { type Principal, requireAdmin } from './policy.js';

export function keyJson(k: KeyInfo) {
  return {
    id: k.id,
    object: 'api_key',
    tenant: k.tenant,
    role: k.role,
    created: Math.floor(k.createdAt / 1000),
    revoked: k.revokedAt === null ? null : Math.floor(k.revokedAt / 1000),
  };
}

export async function handleKeyCreate(req: IncomingMessage, keys: ApiKeys, p: Principal): Promise<ApiReply> {
  requireAdmin(p, 'creating keys');
  const body = await readJsonObject(req);
  const { tenant, role } = body;
  if (typeof tenant !== 'string') throw new ApiError(400, '"tenant" must be a string', { param: 'tenant' });
  if (role !== undefined && role !== 'tenant' && role !== 'admin')
    throw new ApiError(400, '"role" must be "tenant" or "admin"', { param: 'role' });
  const made = await keys.create({ tenant, role: role ?? 'tenant' });
  return { status: 201, json: { ...keyJson(made.info), key: made.key } };
}

export async function handleKeyList(keys: ApiKeys, p: Principal): Promise<ApiReply> {
  requireAdmin(p, 'listing keys');
  return { status: 200, json: { object: 'list', data: (await keys.list()).map(keyJson) } };
}

export async function handleKeyRevoke(id: string, keys: ApiKeys, p: Principal): Promise<ApiReply> {
  requireAdmin(p, 'revoking keys');
  if (!(await keys.revoke(id))) throw new ApiError(404, `no key with id "${id}"`, { code: 'key_not_found' });
  return { status: 200, json: { id, object: 'api_key', revoked: true } };
}
