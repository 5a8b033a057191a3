// loadModel(dir): config.json → the transformers class (registry) → a module skeleton → every
// checkpoint tensor loaded into its parameter, with exact checks. Parameters come back frozen
// (requiresGrad false) and the model in eval mode, as from_pretrained returns it. Also: a new task head
// on a pretrained base (newHead), and createModel() for random weights from a config (pretraining).

import { join } from 'node:path';
import type { Backend } from '../backends/backend.js';
import { type DeviceName, backendForDevice, defaultBackend } from '../backends/registry.js';
import { Checkpoint } from '../io/checkpoint.js';
import { readJsonFile } from '../io/json.js';
import { LayerNorm, RMSNorm } from '../nn/layers.js';
import { tensor } from '../tensor/creation.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { NoInitGenerator } from './common.js';
import { type HFConfig, asConfigObject } from './config-utils.js';
import type { PreTrainedModel } from './pretrained.js';
import { resolveModelClass } from './registry.js';
import { type ParameterDType, adoptParameter, keepWeightsInBf16, loadTarget, skeletonBackend } from './storage.js';

/** Where a model's parameters live: a backend, or a device (which picks its backend); not both, unless they agree. */
export interface PlacementOptions {
  backend?: Backend;
  /**
   * 'cpu' (the native backend when built, else js) or 'cuda' (an NVIDIA GPU; throws "[cuda] The cuda
   * backend is unavailable: …" where there is none). Default: the default backend.
   */
  device?: DeviceName;
}

/** The backend of `opts`: opts.backend, else opts.device's, else the default backend. */
export function placementBackend(opts: PlacementOptions, who: string): Backend {
  const { backend, device } = opts;
  if (device === undefined) return backend ?? defaultBackend();
  if (device !== 'cpu' && device !== 'cuda')
    throw new Error(`[${who}] device ${JSON.stringify(device)} is not supported: use 'cpu' or 'cuda'`);
  if (backend === undefined) return backendForDevice(device);
  if (backend.device !== device)
    throw new Error(
      `[${who}] backend ${JSON.stringify(backend.name)} (on ${backend.device}) and device '${device}' disagree: give one of them`,
    );
  return backend;
}

export interface LoadModelOptions extends PlacementOptions {
  /**
   * Parameter storage. 'f32' (default): every parameter in f32 (BF16/F16 checkpoints are widened
   * exactly). 'bf16': the weights of Linear and Embedding layers are kept in bf16 — half the memory;
   * F32 checkpoints are rounded to nearest even — and read by the GEMM as exact f32 on the fly; norms,
   * biases and classification heads (score, classifier) stay f32. bf16 weights are frozen: they cannot
   * require grad (adapters such as VeRA and LoRA train their own f32 parameters on top of them).
   */
  dtype?: ParameterDType;
  /** Load as this class instead of config.architectures[0] (e.g. a classification head). */
  architecture?: string;
  /**
   * Labels of a classification head: id2label/label2id become LABEL_i when the config's mapping has
   * another size (opts.config may give the names), and num_labels is updated where the config has it.
   */
  numLabels?: number;
  /** Fields merged over config.json before the model is built (pad_token_id, id2label, problem_type, …). */
  config?: HFConfig;
  /**
   * Put a new task head on a pretrained base: head parameters (score, classifier) the checkpoint lacks,
   * or holds in another shape, are initialised as transformers does (normal(0, initializer_range)
   * weights, zero biases) from Generator(seed), with a warning naming them; another task's head in the
   * file (lm_head of a causal-LM checkpoint) is ignored. Every other key must still load exactly.
   */
  newHead?: { seed: number; warn?: (message: string) => void };
}

export function loadModel(dir: string, opts: LoadModelOptions = {}): PreTrainedModel {
  const dtype = opts.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'bf16')
    throw new Error(
      `[loadModel] dtype ${JSON.stringify(dtype)} is not supported: parameters load as 'f32' or 'bf16' (frozen Linear/Embedding weights in bf16)`,
    );
  const configPath = join(dir, 'config.json');
  const config = withOverrides(asConfigObject(readJsonFile(configPath), configPath), opts);
  const cls = resolveModelClass(config, opts.architecture, configPath);
  const backend = placementBackend(opts, 'loadModel');
  // Built on a skeleton (no memory): loading replaces each placeholder by the checkpoint tensor itself.
  const model = cls.create(config, { backend: skeletonBackend(backend), generator: new NoInitGenerator() });
  let ckpt: Checkpoint | null = null;
  try {
    if (dtype === 'bf16') keepWeightsInBf16(model);
    ckpt = Checkpoint.open(dir);
    const fresh = model.loadCheckpoint(ckpt, dir, { newHead: opts.newHead !== undefined });
    if (fresh.length > 0 && opts.newHead) {
      initWeights(model, new Generator(opts.newHead.seed), new Set(fresh));
      const warn = opts.newHead.warn ?? ((m: string) => process.emitWarning(m, { code: 'VERA_NEW_HEAD' }));
      warn(
        `Some weights of ${model.architecture} were not initialized from the model checkpoint at ${dir} and are newly initialized: [${fresh.map((n) => `'${n}'`).join(', ')}]. Train them before using the model for predictions.`,
      );
    }
    const unloaded = model.namedParameters().find(([, p]) => loadTarget(p) !== null);
    if (unloaded) throw new Error(`[loadModel] ${dir}: parameter "${unloaded[0]}" was neither loaded nor initialised`);
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    ckpt?.close();
  }
  model.nameOrPath = dir;
  return model.freeze().eval();
}

export interface CreateModelOptions extends PlacementOptions {
  architecture?: string;
  numLabels?: number;
  config?: HFConfig;
  /** Seed of the initialisation. */
  seed: number;
}

/**
 * A model with random weights from a config object or a directory's config.json (pretraining from
 * scratch), initialised as transformers' _init_weights does: see initWeights. Parameters come back
 * trainable and the model in training mode.
 */
export function createModel(configOrDir: HFConfig | string, opts: CreateModelOptions): PreTrainedModel {
  const source = typeof configOrDir === 'string' ? join(configOrDir, 'config.json') : 'config';
  const raw = typeof configOrDir === 'string' ? readJsonFile(source) : configOrDir;
  const config = withOverrides(asConfigObject(raw, source), opts);
  const cls = resolveModelClass(config, opts.architecture, source);
  const model = cls.create(config, {
    backend: placementBackend(opts, 'createModel'),
    generator: new NoInitGenerator(),
  });
  initWeights(model, new Generator(opts.seed));
  if (typeof configOrDir === 'string') model.nameOrPath = configOrDir;
  for (const p of model.parameters()) p.setRequiresGrad(true);
  return model.train();
}

/**
 * transformers' _init_weights for the parameters named in `only` (default: all): weights of linear
 * layers and embeddings ~ normal(0, initializer_range), GPT-2's residual projections (c_proj) scaled by
 * 1/√(2·n_layer), biases zero, LayerNorm/RMSNorm weights one. Draws in parameter order from `g`.
 */
export function initWeights(model: PreTrainedModel, g: Generator, only?: ReadonlySet<string>): void {
  const std = typeof model.config['initializer_range'] === 'number' ? model.config['initializer_range'] : 0.02;
  const nLayer = typeof model.config['n_layer'] === 'number' ? model.config['n_layer'] : 1;
  const norms = new Set<Tensor>();
  for (const [, m] of model.namedModules()) {
    if (m instanceof LayerNorm || m instanceof RMSNorm) for (const p of m.parameters()) norms.add(p);
  }
  for (const [name, p] of model.stateDict()) {
    if (only && !only.has(name)) continue;
    let values: Float32Array;
    if (norms.has(p)) values = new Float32Array(p.numel).fill(name.endsWith('.bias') ? 0 : 1);
    else if (name.endsWith('.bias')) values = new Float32Array(p.numel);
    else {
      const s = model.modelType === 'gpt2' && name.endsWith('c_proj.weight') ? std / Math.sqrt(2 * nLayer) : std;
      values = g.normal(p.numel, 0, s);
    }
    // A parameter of a skeleton (see storage.ts) has no memory yet: a new tensor takes its place.
    const target = loadTarget(p);
    const t = tensor(values, { shape: p.shape, dtype: p.dtype, backend: target ?? p.backend });
    if (target) adoptParameter(model, p, t);
    else {
      p.backend.copy(p.view('initWeights'), t.view('initWeights'));
      t.dispose();
    }
  }
}

/** config.json with opts.config merged in and num_labels (and a label mapping of that size) set. */
function withOverrides(config: HFConfig, opts: { numLabels?: number; config?: HFConfig }): HFConfig {
  const out: HFConfig = { ...config, ...opts.config };
  const n = opts.numLabels;
  if (n === undefined) return out;
  if (!Number.isInteger(n) || n < 1) throw new Error(`[loadModel] numLabels must be a positive integer, got ${n}`);
  // transformers derives num_labels from id2label; a config that spells num_labels out gets it updated.
  if ('num_labels' in out) out['num_labels'] = n;
  const map = out['id2label'];
  const size = map !== null && typeof map === 'object' ? Object.keys(map).length : -1;
  if (size !== n) {
    out['id2label'] = Object.fromEntries(Array.from({ length: n }, (_, i) => [String(i), `LABEL_${i}`]));
    out['label2id'] = Object.fromEntries(Array.from({ length: n }, (_, i) => [`LABEL_${i}`, i]));
  }
  return out;
}
