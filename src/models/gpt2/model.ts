// GPT-2 (transformers' GPT2LMHeadModel and GPT2ForSequenceClassification) with HF's module names, so
// parameter names are the checkpoint keys. Conv1D layers are Linear with fanInFanOut ([in, out] weights).

import { blockForward } from '../blocks.js';
import { type InitOpts, Embedding, LayerNorm, Linear, type LinearLike } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import * as ops from '../../ops/index.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { floatLogits, idsShape, lmOutput, keyMask, lastNonPadIndex, poolAt } from '../common.js';
import { positionRange } from '../positions.js';
import type { HFConfig } from '../config-utils.js';
import { type LayerCache, type ModelInputs, PreTrainedModel, type Task, type WeightSpec } from '../pretrained.js';
import { type GPT2Config, parseGPT2Config } from './config.js';
import { GPT2_WEIGHTS, gpt2TiedWeights } from './weights.js';
import { hasBf16Weights } from '../storage.js';

export class GPT2Attention extends Module {
  c_attn: LinearLike;
  c_proj: LinearLike;
  readonly #scale: number;

  constructor(
    readonly cfg: GPT2Config,
    readonly layerIdx: number,
    opts: InitOpts,
  ) {
    super();
    this.c_attn = new Linear(cfg.nEmbd, 3 * cfg.nEmbd, { ...opts, fanInFanOut: true });
    this.c_proj = new Linear(cfg.nEmbd, cfg.nEmbd, { ...opts, fanInFanOut: true });
    const d = cfg.nEmbd / cfg.nHead;
    this.#scale = (cfg.scaleAttnWeights ? 1 / Math.sqrt(d) : 1) / (cfg.scaleAttnByInverseLayerIdx ? layerIdx + 1 : 1);
  }

  forward(x: Tensor, mask: Tensor | null, cache: LayerCache | undefined): Tensor {
    const [b, t, c] = x.shape as [number, number, number];
    const { nHead: h } = this.cfg;
    return scope(() => {
      const qkv = this.c_attn.forward(x); // (B, T, 3C)
      const [q, k, v] = ops.split(qkv, [c, c, c], -1).map((p) => ops.reshape(p, [b, t, h, c / h])); // (B, T, H, D)
      const kv = cache ? cache.update(this.layerIdx, k!, v!) : { k: k!, v: v! }; // (B, Tk, H, D)
      const y = ops.attention(q!, kv.k, kv.v, {
        causal: true,
        keyMask: mask,
        scale: this.#scale,
        dropout: this.cfg.attnPdrop,
        training: this.training,
        lowPrecision: hasBf16Weights(this),
      }); // (B, T, H, D)
      return ops.dropout(this.c_proj.forward(ops.reshape(y, [b, t, c])), this.cfg.residPdrop, this.training); // (B, T, C)
    });
  }
}

export class GPT2MLP extends Module {
  c_fc: LinearLike;
  c_proj: LinearLike;

  constructor(
    readonly cfg: GPT2Config,
    opts: InitOpts,
  ) {
    super();
    this.c_fc = new Linear(cfg.nEmbd, cfg.nInner, { ...opts, fanInFanOut: true });
    this.c_proj = new Linear(cfg.nInner, cfg.nEmbd, { ...opts, fanInFanOut: true });
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      const hdn = this.cfg.activation(this.c_fc.forward(x)); // (B, T, 4C)
      return ops.dropout(this.c_proj.forward(hdn), this.cfg.residPdrop, this.training); // (B, T, C)
    });
  }
}

export class GPT2Block extends Module {
  ln_1: LayerNorm;
  attn: GPT2Attention;
  ln_2: LayerNorm;
  mlp: GPT2MLP;

  constructor(cfg: GPT2Config, layerIdx: number, opts: InitOpts) {
    super();
    this.ln_1 = new LayerNorm(cfg.nEmbd, cfg.layerNormEpsilon, opts);
    this.attn = new GPT2Attention(cfg, layerIdx, opts);
    this.ln_2 = new LayerNorm(cfg.nEmbd, cfg.layerNormEpsilon, opts);
    this.mlp = new GPT2MLP(cfg, opts);
  }

  forward(x: Tensor, mask: Tensor | null, cache: LayerCache | undefined): Tensor {
    return scope(() => {
      const h = ops.add(x, this.attn.forward(this.ln_1.forward(x), mask, cache)); // (B, T, C)
      return ops.add(h, this.mlp.forward(this.ln_2.forward(h))); // (B, T, C)
    });
  }
}

export class GPT2Model extends Module {
  wte: Embedding;
  wpe: Embedding;
  h: GPT2Block[];
  ln_f: LayerNorm;

  constructor(
    readonly cfg: GPT2Config,
    opts: InitOpts,
  ) {
    super();
    this.wte = new Embedding(cfg.vocabSize, cfg.nEmbd, { ...opts, std: 0.02 });
    this.wpe = new Embedding(cfg.nPositions, cfg.nEmbd, { ...opts, std: 0.02 });
    this.h = Array.from({ length: cfg.nLayer }, (_, i) => new GPT2Block(cfg, i, opts));
    this.ln_f = new LayerNorm(cfg.nEmbd, cfg.layerNormEpsilon, opts);
  }

  /** Final hidden states (B, T, C). */
  forward(inputs: ModelInputs): Tensor {
    const [, t] = idsShape(inputs.inputIds, 'GPT2Model');
    const ids = inputs.inputIds!;
    const past = inputs.cache?.length ?? 0;
    return scope(() => {
      const pos = inputs.positionIds ?? ops.reshape(positionRange(ids.backend, past, t), [1, t]);
      let x = ops.add(this.wte.forward(ids), this.wpe.forward(pos)); // (B, T, C)
      if (inputs.tokenTypeIds) x = ops.add(x, this.wte.forward(inputs.tokenTypeIds));
      x = ops.dropout(x, this.cfg.embdPdrop, this.training);
      const mask = keyMask(inputs.attentionMask);
      for (const block of this.h) {
        const run = (h: Tensor, m?: Tensor) => block.forward(h, m ?? null, inputs.cache);
        x = blockForward(this, block, run as (h: Tensor, ...m: Tensor[]) => Tensor, x, [mask]);
      }
      return this.ln_f.forward(x); // (B, T, C)
    });
  }
}

abstract class GPT2PreTrainedModel extends PreTrainedModel {
  readonly modelType = 'gpt2';
  readonly cfg: GPT2Config;

  constructor(config: HFConfig) {
    super(config);
    this.cfg = parseGPT2Config(config);
  }

  weightSpec(): WeightSpec {
    return GPT2_WEIGHTS;
  }
}

export class GPT2LMHeadModel extends GPT2PreTrainedModel {
  readonly architecture = 'GPT2LMHeadModel';
  readonly task: Task = 'causal-lm';
  transformer: GPT2Model;
  lm_head: LinearLike;

  constructor(config: HFConfig, opts: InitOpts = {}) {
    super(config);
    this.transformer = new GPT2Model(this.cfg, opts);
    const head = new Linear(this.cfg.nEmbd, this.cfg.vocabSize, { ...opts, bias: false });
    if (this.cfg.tieWordEmbeddings) {
      head.weight.dispose();
      head.weight = this.transformer.wte.weight;
    }
    this.lm_head = head;
  }

  override tiedWeights(): [string, string][] {
    return gpt2TiedWeights(this.cfg.tieWordEmbeddings);
  }

  forward(inputs: ModelInputs): Tensor {
    return scope(() => {
      let hidden = this.transformer.forward(inputs); // (B, T, C)
      if (inputs.logitsToKeep) hidden = ops.slice(hidden, 1, -inputs.logitsToKeep);
      return lmOutput(this.lm_head, hidden, inputs.lossTargets); // (B, T, V), or the loss (B, T)
    });
  }
}

export class GPT2ForSequenceClassification extends GPT2PreTrainedModel {
  readonly architecture = 'GPT2ForSequenceClassification';
  readonly task: Task = 'sequence-classification';
  transformer: GPT2Model;
  score: LinearLike;

  constructor(config: HFConfig, opts: InitOpts = {}) {
    super(config);
    this.transformer = new GPT2Model(this.cfg, opts);
    this.score = new Linear(this.cfg.nEmbd, this.cfg.numLabels, { ...opts, bias: false });
  }

  forward(inputs: ModelInputs): Tensor {
    idsShape(inputs.inputIds, this.architecture);
    return scope(() => {
      const index = lastNonPadIndex(inputs.inputIds!, this.cfg.padTokenId, this.architecture); // (B)
      const hidden = this.transformer.forward(inputs); // (B, T, C)
      return floatLogits(this.score.forward(poolAt(hidden, index))); // (B, numLabels)
    });
  }
}
