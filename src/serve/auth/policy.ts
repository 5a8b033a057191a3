// Who may see, use and manage what (pure functions: no store, no I/O).
//
// A tenant sees and uses its own adapters and those without an owner; another tenant's adapter must
// look absent (404, the same answer as a name that does not exist). It manages (re-uploads, removes)
// only its own. An admin sees and manages everything, and keys.

import { ApiError } from './errors.js';
import type { Role } from '../store/types.js';

/** Who a request is: from its key (see keys.ts authenticate), or LOCAL_ADMIN on a server without keys. */
export interface Principal {
  /** The key's id; null for LOCAL_ADMIN. */
  keyId: string | null;
  tenant: string;
  role: Role;
}

/** A server run without any keys (bound to 127.0.0.1): every caller is the local admin. */
export const LOCAL_ADMIN: Principal = Object.freeze({ keyId: null, tenant: 'local', role: 'admin' });

export const isAdmin = (p: Principal): boolean => p.role === 'admin';

/** May `p` see and use an adapter owned by `owner` (null: no owner)? */
export function canUse(p: Principal, owner: string | null): boolean {
  return isAdmin(p) || owner === null || owner === p.tenant;
}

/** May `p` replace or remove an adapter owned by `owner`? */
export function canManage(p: Principal, owner: string | null): boolean {
  return isAdmin(p) || (owner !== null && owner === p.tenant);
}

/** The `tenant` argument of AdapterStore.list for `p`: undefined (all) for an admin. */
export function listTenant(p: Principal): string | undefined {
  return isAdmin(p) ? undefined : p.tenant;
}

/** The items `p` may see. */
export function visible<T extends { owner: string | null }>(p: Principal, items: readonly T[]): T[] {
  return items.filter((i) => canUse(p, i.owner));
}

/** OpenAI's answer for a model that does not exist, also for one that `p` may not see. */
export function modelNotFound(name: string, param = 'model'): ApiError {
  return new ApiError(404, `The model \`${name}\` does not exist.`, { code: 'model_not_found', param });
}

export function requireAdmin(p: Principal, what: string): void {
  if (!isAdmin(p)) throw new ApiError(403, `${what} needs an admin key`, { code: 'admin_required' });
}

/**
 * The owner an upload by `p` stores, and whether it may replace another owner's adapter. `requested` is
 * the upload's `owner` field (undefined: not given; null or '': no owner); `existing` the current
 * adapter of that name, if any. A tenant always uploads as itself; an admin keeps the existing owner
 * unless it names one.
 */
export function uploadOwner(
  p: Principal,
  requested: string | null | undefined,
  existing: { owner: string | null } | null,
): { owner: string | null; replaceOwner: boolean } {
  if (!isAdmin(p)) {
    if (requested !== undefined && requested !== p.tenant)
      throw new ApiError(403, `a tenant key uploads adapters owned by its own tenant ("${p.tenant}") only`, {
        code: 'permission_denied',
        param: 'owner',
      });
    return { owner: p.tenant, replaceOwner: false };
  }
  if (requested === undefined) return { owner: existing?.owner ?? null, replaceOwner: false };
  return { owner: requested === '' ? null : requested, replaceOwner: true };
}
