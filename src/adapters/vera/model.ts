// VeRA as an adapter method (PEFT's vera/model.py): one pair of projections per model, sized by the
// largest in/out features among the targeted layers (_find_dim), drawn from projection_prng_key (or
// read from the adapter file) and shared by every layer and every adapter of the model.

import type { LinearLike } from '../../nn/layers.js';
import type { Module } from '../../nn/module.js';
import type { Tensor } from '../../tensor/tensor.js';
import { AdapterError } from '../errors.js';
import type { AdapterLayer } from '../layer.js';
import type { AdapterMethod, ExpectedTensor, ModelContext, Target } from '../method.js';
import type { PyJson } from '../python-json.js';
import { type VeraConfig, experimentalOf, veraFromJson, veraToJson } from './config.js';
import { VeraLinear, type VeraProjections, dropBf16Projections } from './layer.js';
import { makeProjections } from './projections.js';
import { SharedInputProjection } from './shared-input.js';

export class VeraMethod implements AdapterMethod<VeraConfig> {
  readonly peftType = 'VERA';
  readonly prefix = 'vera_lambda_';
  /** adapter name → its projections (all adapters point at the first adapter's pair). */
  readonly projections = new Map<string, VeraProjections>();
  /** The model-wide cache of A_s·x, so layers reading the same input project it once. */
  readonly sharedInput: SharedInputProjection;
  readonly #fma: boolean;

  /** `shareInput` (default true): layers reading the same input reuse one A_s·x (see shared-input.ts). */
  constructor(opts: { fma?: boolean; shareInput?: boolean } = {}) {
    this.#fma = opts.fma ?? true;
    this.sharedInput = new SharedInputProjection(opts.shareInput ?? true);
  }

  fromJson(json: Record<string, unknown>, file: string): VeraConfig {
    return veraFromJson(json, file);
  }

  toJson(config: VeraConfig): Record<string, PyJson> {
    return veraToJson(config);
  }

  checkNewAdapter(_name: string, config: VeraConfig, existing: ReadonlyMap<string, VeraConfig>): void {
    for (const prev of existing.values()) {
      if (prev.projection_prng_key !== config.projection_prng_key) {
        throw new AdapterError(
          `[vera] Vera PRNG initialisation key must be the same for all adapters. Got config.projection_prng_key=${config.projection_prng_key} but previous config had ${prev.projection_prng_key}`,
        );
      }
      if (prev.save_projection !== config.save_projection) {
        throw new AdapterError(
          `[vera] VeRA projection weights must be saved for all adapters or none, but got multiple different values: [${prev.save_projection}, ${config.save_projection}]`,
        );
      }
      // The projections are shared, so they are drawn one way for all adapters.
      const [was, now] = [experimentalOf(prev).projection_init, experimentalOf(config).projection_init];
      if (was !== now)
        throw new AdapterError(
          `[vera] experimental.projection_init must be the same for all adapters (they share the projections), got ${now} but previous config had ${was}`,
        );
    }
  }

  prepare(
    name: string,
    config: VeraConfig,
    targets: readonly Target[],
    ctx: ModelContext,
    stored: ReadonlySet<string> | null,
  ): ExpectedTensor[] {
    const existing = this.projections.values().next().value as VeraProjections | undefined;
    // PEFT refuses a larger r here and fails in the forward with a smaller one: refuse both, saying why.
    if (existing && existing.A.shape[0] !== config.r)
      throw new AdapterError(
        `[vera] adapter "${name}" has r=${config.r}, but this model's shared projections have r=${existing.A.shape[0]} (set by its first adapter): VeRA adapters on one model must share r`,
      );
    let maxIn = 0;
    let maxOut = 0;
    for (const t of targets) {
      maxIn = Math.max(maxIn, t.layer.inFeatures);
      maxOut = Math.max(maxOut, t.layer.outFeatures);
    }
    // Later adapters reuse the first one's tensors (PEFT: vera_A[new] is vera_A[first]).
    const p =
      existing ??
      makeProjections(config.projection_prng_key, config.r, maxIn, maxOut, {
        baseDType: ctx.baseDType,
        backend: ctx.backend,
        fma: this.#fma,
        init: experimentalOf(config).projection_init,
      });
    this.projections.set(name, p);
    // A file's projections are written over the shared A below: products of the old A become stale.
    this.sharedInput.clear();
    if (stored === null) return [];
    const keys: ExpectedTensor[] = [
      { key: 'base_model.vera_A', shape: p.A.shape, assign: (v) => overwrite(p, p.A, v) },
      { key: 'base_model.vera_B', shape: p.B.shape, assign: (v) => overwrite(p, p.B, v) },
    ];
    if (config.save_projection) {
      for (const k of keys)
        k.missingHint =
          'the config says save_projection=true but the file holds no projections; set "save_projection": false to regenerate them from projection_prng_key';
      return keys;
    }
    // save_projection=false: PEFT regenerates from the seed and ignores stored projections.
    return keys.filter((k) => stored.has(k.key)).map((k) => ({ ...k, ignore: true }));
  }

  isLayer(m: Module): m is AdapterLayer {
    return m instanceof VeraLinear;
  }

  createLayer(base: LinearLike, path: string): AdapterLayer {
    return new VeraLinear(base, path, this.projections, this.sharedInput);
  }

  addToLayer(layer: AdapterLayer, name: string, config: VeraConfig, _path: string, ctx: ModelContext): void {
    const e = experimentalOf(config);
    (layer as VeraLinear).addAdapter(name, {
      trainB: e.train_b,
      trainD: e.train_d,
      fixedValue: e.fixed_value,
      r: config.r,
      dropout: config.vera_dropout,
      dInitial: config.d_initial,
      initWeights: config.init_weights,
      baseDType: ctx.baseDType,
    });
  }

  layerTensors(layer: AdapterLayer, name: string): [string, Tensor][] {
    const v = layer as VeraLinear;
    const b = v.vera_lambda_b.get(name);
    const d = v.vera_lambda_d.get(name);
    return b && d
      ? [
          ['vera_lambda_b', b],
          ['vera_lambda_d', d],
        ]
      : [];
  }

  modelTensors(name: string, config: VeraConfig): [string, Tensor][] {
    const p = this.projections.get(name);
    return p && config.save_projection
      ? [
          ['base_model.vera_A', p.A],
          ['base_model.vera_B', p.B],
        ]
      : [];
  }

  deleteAdapter(name: string): void {
    const p = this.projections.get(name);
    this.projections.delete(name);
    if (p && ![...this.projections.values()].includes(p)) {
      dropBf16Projections(p);
      p.A.dispose();
      p.B.dispose();
    }
  }
}

function overwrite(p: VeraProjections, dst: Tensor, src: Tensor): void {
  dst.backend.copy(dst.view('load'), src.view('load'));
  dropBf16Projections(p); // the bf16 copies held the old values
}
