// BERT and RoBERTa encoders with their sequence-classification heads, module for module as in
// transformers (post-norm layers, exact GELU, key-padding mask; RoBERTa's padding-aware position ids).

import { blockForward } from '../blocks.js';
import { type InitOpts, Embedding, LayerNorm, Linear, type LinearLike } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import * as ops from '../../ops/index.js';
import { full, zeros } from '../../tensor/creation.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { firstToken, floatLogits, idsShape, keyMask } from '../common.js';
import type { HFConfig } from '../config-utils.js';
import { positionRange } from '../positions.js';
import { type ModelInputs, PreTrainedModel, type Task, type WeightSpec } from '../pretrained.js';
import { type BertConfig, type BertVariant, parseBertConfig } from './config.js';
import { bertWeights } from './weights.js';
import { hasBf16Weights } from '../storage.js';

export class BertEmbeddings extends Module {
  word_embeddings: Embedding;
  position_embeddings: Embedding;
  token_type_embeddings: Embedding;
  LayerNorm: LayerNorm;

  constructor(
    readonly cfg: BertConfig,
    opts: InitOpts,
  ) {
    super();
    const o = { ...opts, std: 0.02 };
    this.word_embeddings = new Embedding(cfg.vocabSize, cfg.hiddenSize, o);
    this.position_embeddings = new Embedding(cfg.maxPositionEmbeddings, cfg.hiddenSize, o);
    this.token_type_embeddings = new Embedding(cfg.typeVocabSize, cfg.hiddenSize, o);
    this.LayerNorm = new LayerNorm(cfg.hiddenSize, cfg.layerNormEps, opts);
  }

  forward(inputs: ModelInputs): Tensor {
    const [b, t] = idsShape(inputs.inputIds, 'BertEmbeddings');
    const ids = inputs.inputIds!;
    const backend = ids.backend;
    return scope(() => {
      const pos = inputs.positionIds ?? this.#positionIds(ids); // (B or 1, T)
      const types = inputs.tokenTypeIds ?? zeros([b, t], { dtype: 'i32', backend }); // (B, T)
      let x = ops.add(this.word_embeddings.forward(ids), this.token_type_embeddings.forward(types)); // (B, T, C)
      x = ops.add(x, this.position_embeddings.forward(pos));
      return ops.dropout(this.LayerNorm.forward(x), this.cfg.hiddenDropoutProb, this.training); // (B, T, C)
    });
  }

  // BERT: arange(T). RoBERTa (create_position_ids_from_input_ids): padding_idx + cumsum(id ≠ pad)·(id ≠ pad),
  // on the device: the running count is mask · U with U[j, i] = (j ≤ i), a GEMM of 0/1 values whose sums
  // (integers ≤ T) are exact in f32, so nothing is read back to the host.
  #positionIds(ids: Tensor): Tensor {
    const [, t] = ids.shape as [number, number];
    if (this.cfg.variant === 'bert') return ops.reshape(positionRange(ids.backend, 0, t), [1, t]);
    const pad = this.cfg.padTokenId;
    return scope(() => {
      const real = ops.ne(ids, pad); // (B, T)
      const steps = positionRange(ids.backend, 0, t, 'f32');
      const upper = ops.cast(ops.le(ops.reshape(steps, [t, 1]), ops.reshape(steps, [1, t])), 'f32'); // (T, T)
      const count = ops.matmul(ops.cast(real, 'f32'), upper); // (B, T): real tokens up to each position
      const padding = full([], pad, { backend: ids.backend });
      return ops.cast(ops.where(real, ops.addScalar(count, pad), padding), 'i32'); // (B, T)
    });
  }
}

export class BertSelfAttention extends Module {
  query: LinearLike;
  key: LinearLike;
  value: LinearLike;

  constructor(
    readonly cfg: BertConfig,
    opts: InitOpts,
  ) {
    super();
    const c = cfg.hiddenSize;
    this.query = new Linear(c, c, opts);
    this.key = new Linear(c, c, opts);
    this.value = new Linear(c, c, opts);
  }

  forward(x: Tensor, mask: Tensor | null): Tensor {
    const [b, t, c] = x.shape as [number, number, number];
    const h = this.cfg.numAttentionHeads;
    return scope(() => {
      const heads = (p: LinearLike) => ops.reshape(p.forward(x), [b, t, h, c / h]); // (B, T, H, D)
      const y = ops.attention(heads(this.query), heads(this.key), heads(this.value), {
        keyMask: mask,
        dropout: this.cfg.attentionProbsDropoutProb,
        training: this.training,
        lowPrecision: hasBf16Weights(this),
      });
      return ops.reshape(y, [b, t, c]); // (B, T, C)
    });
  }
}

/** dense → dropout → LayerNorm(· + residual): BertSelfOutput and BertOutput. */
export class BertResidualOutput extends Module {
  dense: LinearLike;
  LayerNorm: LayerNorm;

  constructor(
    readonly cfg: BertConfig,
    inFeatures: number,
    opts: InitOpts,
  ) {
    super();
    this.dense = new Linear(inFeatures, cfg.hiddenSize, opts);
    this.LayerNorm = new LayerNorm(cfg.hiddenSize, cfg.layerNormEps, opts);
  }

  forward(x: Tensor, residual: Tensor): Tensor {
    return scope(() => {
      const y = ops.dropout(this.dense.forward(x), this.cfg.hiddenDropoutProb, this.training); // (B, T, C)
      return this.LayerNorm.forward(ops.add(y, residual));
    });
  }
}

export class BertAttention extends Module {
  self: BertSelfAttention;
  output: BertResidualOutput;

  constructor(cfg: BertConfig, opts: InitOpts) {
    super();
    this.self = new BertSelfAttention(cfg, opts);
    this.output = new BertResidualOutput(cfg, cfg.hiddenSize, opts);
  }

  forward(x: Tensor, mask: Tensor | null): Tensor {
    return scope(() => this.output.forward(this.self.forward(x, mask), x));
  }
}

export class BertIntermediate extends Module {
  dense: LinearLike;

  constructor(
    readonly cfg: BertConfig,
    opts: InitOpts,
  ) {
    super();
    this.dense = new Linear(cfg.hiddenSize, cfg.intermediateSize, opts);
  }

  forward(x: Tensor): Tensor {
    return scope(() => this.cfg.hiddenAct(this.dense.forward(x))); // (B, T, M)
  }
}

export class BertLayer extends Module {
  attention: BertAttention;
  intermediate: BertIntermediate;
  output: BertResidualOutput;

  constructor(cfg: BertConfig, opts: InitOpts) {
    super();
    this.attention = new BertAttention(cfg, opts);
    this.intermediate = new BertIntermediate(cfg, opts);
    this.output = new BertResidualOutput(cfg, cfg.intermediateSize, opts);
  }

  forward(x: Tensor, mask: Tensor | null): Tensor {
    return scope(() => {
      const a = this.attention.forward(x, mask); // (B, T, C)
      return this.output.forward(this.intermediate.forward(a), a); // (B, T, C)
    });
  }
}

export class BertEncoder extends Module {
  layer: BertLayer[];

  constructor(cfg: BertConfig, opts: InitOpts) {
    super();
    this.layer = Array.from({ length: cfg.numHiddenLayers }, () => new BertLayer(cfg, opts));
  }

  forward(x: Tensor, mask: Tensor | null): Tensor {
    return scope(() =>
      this.layer.reduce(
        (h, l) =>
          blockForward(
            this,
            l,
            ((y: Tensor, m?: Tensor) => l.forward(y, m ?? null)) as (y: Tensor, ...m: Tensor[]) => Tensor,
            h,
            [mask],
          ),
        x,
      ),
    );
  }
}

export class BertPooler extends Module {
  dense: LinearLike;

  constructor(cfg: BertConfig, opts: InitOpts) {
    super();
    this.dense = new Linear(cfg.hiddenSize, cfg.hiddenSize, opts);
  }

  forward(hidden: Tensor): Tensor {
    return scope(() => ops.tanh(this.dense.forward(firstToken(hidden)))); // (B, C)
  }
}

/** BertModel (with pooler) and RobertaModel (without): embeddings → encoder → (pooler). */
export class BertModel extends Module {
  embeddings: BertEmbeddings;
  encoder: BertEncoder;
  pooler?: BertPooler;

  constructor(cfg: BertConfig, opts: InitOpts, addPoolingLayer: boolean) {
    super();
    this.embeddings = new BertEmbeddings(cfg, opts);
    this.encoder = new BertEncoder(cfg, opts);
    if (addPoolingLayer) this.pooler = new BertPooler(cfg, opts);
  }

  /** Last hidden states (B, T, C). */
  forward(inputs: ModelInputs): Tensor {
    return scope(() => this.encoder.forward(this.embeddings.forward(inputs), keyMask(inputs.attentionMask)));
  }
}

abstract class BertPreTrainedModel extends PreTrainedModel {
  readonly modelType: BertVariant;
  readonly task: Task = 'sequence-classification';
  readonly cfg: BertConfig;

  constructor(config: HFConfig, variant: BertVariant) {
    super(config);
    this.modelType = variant;
    this.cfg = parseBertConfig(config, variant);
  }

  weightSpec(): WeightSpec {
    return bertWeights(this.modelType);
  }
}

export class BertForSequenceClassification extends BertPreTrainedModel {
  readonly architecture = 'BertForSequenceClassification';
  bert: BertModel;
  classifier: LinearLike;

  constructor(config: HFConfig, opts: InitOpts = {}) {
    super(config, 'bert');
    this.bert = new BertModel(this.cfg, opts, true);
    this.classifier = new Linear(this.cfg.hiddenSize, this.cfg.numLabels, opts);
  }

  forward(inputs: ModelInputs): Tensor {
    return scope(() => {
      const pooled = this.bert.pooler!.forward(this.bert.forward(inputs)); // (B, C)
      return floatLogits(this.classifier.forward(ops.dropout(pooled, this.cfg.classifierDropout, this.training))); // (B, numLabels)
    });
  }
}

/** RoBERTa's head on the first token: dropout → dense → tanh → dropout → out_proj. */
export class RobertaClassificationHead extends Module {
  dense: LinearLike;
  out_proj: LinearLike;

  constructor(
    readonly cfg: BertConfig,
    opts: InitOpts,
  ) {
    super();
    this.dense = new Linear(cfg.hiddenSize, cfg.hiddenSize, opts);
    this.out_proj = new Linear(cfg.hiddenSize, cfg.numLabels, opts);
  }

  forward(hidden: Tensor): Tensor {
    const p = this.cfg.classifierDropout;
    return scope(() => {
      const x = ops.tanh(this.dense.forward(ops.dropout(firstToken(hidden), p, this.training))); // (B, C)
      return this.out_proj.forward(ops.dropout(x, p, this.training)); // (B, numLabels)
    });
  }
}

export class RobertaForSequenceClassification extends BertPreTrainedModel {
  readonly architecture = 'RobertaForSequenceClassification';
  roberta: BertModel;
  classifier: RobertaClassificationHead;

  constructor(config: HFConfig, opts: InitOpts = {}) {
    super(config, 'roberta');
    this.roberta = new BertModel(this.cfg, opts, false);
    this.classifier = new RobertaClassificationHead(this.cfg, opts);
  }

  forward(inputs: ModelInputs): Tensor {
    return scope(() => floatLogits(this.classifier.forward(this.roberta.forward(inputs)))); // (B, numLabels)
  }
}
