// One dispatcher for the admin routes (adapters and keys), so the server mounts them with one call:
//
//   const reply = await handleAdminRequest(req, path, { store, keys }, principal);   // null: not ours
//
// Routes: POST/GET /v1/adapters (upload, list), GET/DELETE /v1/adapters/NAME, POST/GET /v1/keys,
// DELETE /v1/keys/ID. See ../store/http-handlers.ts and ./http-handlers.ts for each.

import type { IncomingMessage } from 'node:http';
import {
  type UploadLimits,
  adapterNameFromPath,
  handleAdapterDelete,
  handleAdapterGet,
  handleAdapterList,
  handleAdapterUpload,
} from '../store/http-handlers.js';
import type { AdapterStore } from '../store/types.js';
import { ApiError, type ApiReply } from './errors.js';
import { handleKeyCreate, handleKeyList, handleKeyRevoke } from './http-handlers.js';
import type { ApiKeys } from './keys.js';
import type { Principal } from './policy.js';

export interface AdminDeps {
  store: AdapterStore;
  keys: ApiKeys;
  limits?: UploadLimits;
}

function methodNotAllowed(method: string, path: string, allowed: string): ApiError {
  return new ApiError(405, `${method} is not allowed on ${path} (use ${allowed})`, { headers: { allow: allowed } });
}

/** The reply of an admin route, or null when `path` (without the query) is none of them. */
export async function handleAdminRequest(
  req: IncomingMessage,
  path: string,
  deps: AdminDeps,
  p: Principal,
): Promise<ApiReply | null> {
  const method = req.method ?? 'GET';
  const query = new URL(req.url ?? '/', 'http://x').searchParams;
  if (path === '/v1/adapters') {
    if (method === 'POST') return handleAdapterUpload(req, deps.store, p, deps.limits);
    if (method === 'GET') return handleAdapterList(deps.store, p);
    throw methodNotAllowed(method, path, 'GET, POST');
  }
  const name = adapterNameFromPath(path);
  if (name !== null) {
    if (method === 'GET') {
      const v = query.get('version');
      if (v !== null && !/^[1-9][0-9]*$/.test(v))
        throw new ApiError(400, `version must be a positive integer, got "${v}"`, { param: 'version' });
      return handleAdapterGet(name, deps.store, p, v === null ? undefined : Number(v));
    }
    if (method === 'DELETE') return handleAdapterDelete(name, deps.store, p);
    throw methodNotAllowed(method, path, 'GET, DELETE');
  }
  if (path === '/v1/keys') {
    if (method === 'POST') return handleKeyCreate(req, deps.keys, p);
    if (method === 'GET') return handleKeyList(deps.keys, p);
    throw methodNotAllowed(method, path, 'GET, POST');
  }
  const key = /^\/v1\/keys\/([^/]+)$/.exec(path);
  if (key) {
    if (method === 'DELETE') return handleKeyRevoke(key[1]!, deps.keys, p); // ids are hex: nothing to decode
    throw methodNotAllowed(method, path, 'DELETE');
  }
  return null;
}
