// The adapter routes, as functions the server mounts (each returns the reply or throws an ApiError /
// StoreError, which errorReply() in ../auth/errors.ts turns into OpenAI's error shape):
//
//   POST   /v1/adapters        multipart/form-data: field `name` (and, admins only, `owner`: a tenant, or
//                              empty for none), files `adapter_config.json` and `adapter_model.safetensors`
//                              (as the part's field name or its file name) → 201 the stored adapter. The
//                              store validates it first (422 with the reason; nothing stored), then stores
//                              it as a new version.
//   GET    /v1/adapters/NAME   → the adapter's info and config (?version=N: a kept older version)
//   DELETE /v1/adapters/NAME   → {id, object: "adapter", deleted: true}
//
// Another tenant's adapter answers 404 exactly as a missing one (policy.ts). Uploads are bounded: the
// config and the weights each by a limit (413 naming the file), at most two files and a few fields.

import busboy from 'busboy';
import type { IncomingMessage } from 'node:http';
import { ApiError, type ApiReply } from '../auth/errors.js';
import { type Principal, canManage, canUse, listTenant, modelNotFound, uploadOwner } from '../auth/policy.js';
import {
  ADAPTER_FILES,
  type AdapterFileName,
  type AdapterFiles,
  type AdapterInfo,
  type AdapterStore,
  type StoredAdapter,
} from './types.js';

export interface UploadLimits {
  /** Largest adapter_config.json (default 1 MiB). */
  maxConfigBytes?: number;
  /** Largest adapter_model.safetensors (default 256 MiB: a VeRA adapter is kilobytes, a LoRA one megabytes). */
  maxWeightsBytes?: number;
}

export function adapterJson(a: AdapterInfo) {
  return {
    id: a.name,
    object: 'adapter',
    version: a.version,
    owner: a.owner,
    bytes: a.bytes,
    created: Math.floor(a.createdAt / 1000),
  };
}

/** The adapter `name` if `p` may use it, else 404 as if absent (the server loads adapters through this). */
export async function adapterFor(
  store: AdapterStore,
  p: Principal,
  name: string,
  opts: { version?: number } = {},
): Promise<StoredAdapter> {
  const a = await store.get(name, opts);
  if (!a || !canUse(p, a.owner)) throw modelNotFound(name);
  return a;
}

export interface ParsedUpload {
  name: string;
  /** The `owner` field: undefined when not sent, '' for none. */
  owner: string | undefined;
  files: AdapterFiles;
}

const isAdapterFile = (s: string | undefined): s is AdapterFileName =>
  s !== undefined && (ADAPTER_FILES as readonly string[]).includes(s);

/** Parses the multipart body of an upload (see the file comment); 400/413/415 on a malformed or large one. */
export function readAdapterUpload(req: IncomingMessage, limits: UploadLimits = {}): Promise<ParsedUpload> {
  const max: Record<AdapterFileName, number> = {
    'adapter_config.json': limits.maxConfigBytes ?? 1 << 20,
    'adapter_model.safetensors': limits.maxWeightsBytes ?? 256 << 20,
  };
  const type = req.headers['content-type'] ?? '';
  if (!/^multipart\/form-data/i.test(type))
    return Promise.reject(
      new ApiError(
        415,
        `an adapter upload is multipart/form-data (fields: name, ${ADAPTER_FILES.join(', ')}); got "${type}"`,
      ),
    );
  const length = Number(req.headers['content-length'] ?? NaN);
  const total = max['adapter_config.json'] + max['adapter_model.safetensors'] + (64 << 10);
  if (length > total)
    return Promise.reject(new ApiError(413, `the upload is ${length} bytes, over the ${total} allowed`));
  return new Promise((resolve, reject) => {
    let failed: ApiError | null = null;
    const fail = (e: ApiError) => (failed ??= e);
    const fields: Record<string, string> = {};
    const chunks: Partial<Record<AdapterFileName, Buffer[]>> = {};
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: req.headers,
        limits: {
          fileSize: Math.max(max['adapter_config.json'], max['adapter_model.safetensors']),
          files: 3, // a third is refused by name below ("unexpected file"), a fourth as too many parts
          fields: 4,
          fieldSize: 1024,
          parts: 7,
        },
      });
    } catch (e) {
      return reject(new ApiError(400, `bad multipart request: ${(e as Error).message}`));
    }
    bb.on('field', (name, value, info) => {
      if (name !== 'name' && name !== 'owner')
        fail(new ApiError(400, `unexpected field "${name}" (fields: name, owner)`, { param: name }));
      else if (info.valueTruncated) fail(new ApiError(413, `field "${name}" is too long`, { param: name }));
      else fields[name] = value;
    });
    bb.on('file', (field, stream, info) => {
      // A body that ends inside a file part destroys that part's stream with "Unexpected end of form";
      // busboy reports the same error below (a 400). Unheard here, it would end the server's process.
      stream.on('error', () => undefined);
      const file = isAdapterFile(field) ? field : isAdapterFile(info.filename) ? info.filename : null;
      if (file === null || chunks[file]) {
        fail(
          new ApiError(
            400,
            file === null
              ? `unexpected file "${info.filename ?? field}" (an adapter is ${ADAPTER_FILES.join(' + ')})`
              : `${file} sent twice`,
            { param: field },
          ),
        );
        stream.resume();
        return;
      }
      const parts: Buffer[] = (chunks[file] = []);
      let size = 0;
      stream.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= max[file]) parts.push(c);
        else if (!failed) fail(new ApiError(413, `${file} is over ${max[file]} bytes`, { param: file }));
      });
      stream.on('limit', () => fail(new ApiError(413, `${file} is over ${max[file]} bytes`, { param: file })));
    });
    for (const ev of ['filesLimit', 'fieldsLimit', 'partsLimit'] as const)
      bb.on(ev, () =>
        fail(new ApiError(413, `too many parts (an upload is name, owner and ${ADAPTER_FILES.join(', ')})`)),
      );
    bb.on('error', (e: Error) => {
      req.unpipe(bb);
      req.resume(); // read the rest away, so the client gets the answer rather than a reset
      reject(failed ?? new ApiError(400, `bad multipart request: ${e.message}`));
    });
    bb.on('close', () => {
      if (failed) return reject(failed);
      const name = fields['name'];
      if (name === undefined) return reject(new ApiError(400, 'the upload has no "name" field', { param: 'name' }));
      const files = {} as AdapterFiles;
      for (const f of ADAPTER_FILES) {
        const c = chunks[f];
        if (!c) return reject(new ApiError(400, `the upload has no ${f}`, { param: f }));
        files[f] = Buffer.concat(c);
      }
      resolve({ name, owner: fields['owner'], files });
    });
    req.on('aborted', () => reject(new ApiError(400, 'the upload was aborted')));
    req.pipe(bb);
  });
}

/** POST /v1/adapters (see the file comment) → 201 with the stored adapter. */
export async function handleAdapterUpload(
  req: IncomingMessage,
  store: AdapterStore,
  p: Principal,
  limits: UploadLimits = {},
): Promise<ApiReply> {
  const up = await readAdapterUpload(req, limits);
  // Invisible to this tenant: the put below answers 409 (names are one namespace), never shows the owner.
  const existing = await store.get(up.name).catch(() => null);
  const { owner, replaceOwner } = uploadOwner(p, up.owner, existing);
  const info = await store.put(up.name, up.files, owner, { replaceOwner });
  return {
    status: 201,
    json: adapterJson(info),
    headers: { location: `/v1/adapters/${encodeURIComponent(info.name)}` },
  };
}

/** GET /v1/adapters: the adapters `p` may use. */
export async function handleAdapterList(store: AdapterStore, p: Principal): Promise<ApiReply> {
  return { status: 200, json: { object: 'list', data: (await store.list(listTenant(p))).map(adapterJson) } };
}

/** GET /v1/adapters/NAME[?version=N]: info and config. */
export async function handleAdapterGet(
  name: string,
  store: AdapterStore,
  p: Principal,
  version?: number,
): Promise<ApiReply> {
  const a = await adapterFor(store, p, name, version === undefined ? {} : { version });
  let config: unknown = null;
  try {
    config = JSON.parse(Buffer.from(a.files['adapter_config.json']).toString('utf8'));
  } catch {
    // stored before validation existed (a hand-placed folder): shown as null
  }
  return { status: 200, json: { ...adapterJson(a), config } };
}

/** DELETE /v1/adapters/NAME: by its owner or an admin; an owner-less one by an admin only (403). */
export async function handleAdapterDelete(name: string, store: AdapterStore, p: Principal): Promise<ApiReply> {
  const a = await store.get(name);
  if (!a || !canUse(p, a.owner)) throw modelNotFound(name);
  if (!canManage(p, a.owner))
    throw new ApiError(403, `adapter "${name}" has no owner: only an admin key may remove it`, {
      code: 'permission_denied',
    });
  // With the owner seen, so that a re-upload in between by another owner is not removed.
  if (!(await store.remove(name, { owner: a.owner }))) throw modelNotFound(name);
  return { status: 200, json: { id: name, object: 'adapter', deleted: true } };
}

/** NAME from a path /v1/adapters/NAME (percent-decoded); null when the path is not one. */
export function adapterNameFromPath(path: string): string | null {
  const m = /^\/v1\/adapters\/([^/]+)$/.exec(path);
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]!);
  } catch {
    return null;
  }
}
