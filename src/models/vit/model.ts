// ViTForImageClassification with transformers 5.x module names: patch embedding + CLS token +
// position embeddings, pre-norm encoder layers (attention.{q,k,v,o}_proj, mlp.fc1/fc2), head on CLS.

import { blockForward } from '../blocks.js';
import { type InitOpts, LayerNorm, Linear, type LinearLike } from '../../nn/layers.js';
import { Module, parameter } from '../../nn/module.js';
import * as ops from '../../ops/index.js';
import { randn, zeros } from '../../tensor/creation.js';
import { ShapeError, fmtShape } from '../../tensor/errors.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { firstToken, floatLogits } from '../common.js';
import type { HFConfig } from '../config-utils.js';
import { type ModelInputs, PreTrainedModel, type Task, type WeightSpec } from '../pretrained.js';
import { type ViTConfig, parseViTConfig } from './config.js';
import { VIT_WEIGHTS } from './weights.js';
import { hasBf16Weights } from '../storage.js';

/** The Conv2d with stride = kernel = patch size (weight [C, Cin, P, P]). */
export class PatchProjection extends Module {
  weight: Tensor; // (C, Cin, P, P)
  bias: Tensor; // (C)

  constructor(inChannels: number, outChannels: number, patch: number, opts: InitOpts) {
    super();
    const g = { generator: opts.generator, backend: opts.backend };
    this.weight = parameter(randn([outChannels, inChannels, patch, patch], { ...g, std: 0.02 }));
    this.bias = parameter(zeros([outChannels], { backend: opts.backend }));
  }

  forward(pixels: Tensor): Tensor {
    return ops.patchEmbed(pixels, this.weight, this.bias); // (B, N, C)
  }
}

export class ViTPatchEmbeddings extends Module {
  projection: PatchProjection;

  constructor(cfg: ViTConfig, opts: InitOpts) {
    super();
    this.projection = new PatchProjection(cfg.numChannels, cfg.hiddenSize, cfg.patchSize, opts);
  }
}

export class ViTEmbeddings extends Module {
  cls_token: Tensor; // (1, 1, C)
  position_embeddings: Tensor; // (1, N + 1, C)
  patch_embeddings: ViTPatchEmbeddings;

  constructor(
    readonly cfg: ViTConfig,
    opts: InitOpts,
  ) {
    super();
    const [h, w] = cfg.imageSize;
    const n = (h / cfg.patchSize) * (w / cfg.patchSize);
    const g = { generator: opts.generator, backend: opts.backend, std: 0.02 };
    this.cls_token = parameter(randn([1, 1, cfg.hiddenSize], g));
    this.position_embeddings = parameter(randn([1, n + 1, cfg.hiddenSize], g));
    this.patch_embeddings = new ViTPatchEmbeddings(cfg, opts);
  }

  forward(pixels: Tensor): Tensor {
    const { numChannels, imageSize } = this.cfg;
    if (
      pixels.rank !== 4 ||
      pixels.shape[1] !== numChannels ||
      pixels.shape[2] !== imageSize[0] ||
      pixels.shape[3] !== imageSize[1]
    )
      throw new ShapeError(
        `[ViTEmbeddings] pixelValues ${fmtShape(pixels.shape)} do not match the model's [B, ${numChannels}, ${imageSize[0]}, ${imageSize[1]}]`,
      );
    const [b] = pixels.shape as [number];
    return scope(() => {
      const patches = this.patch_embeddings.projection.forward(pixels); // (B, N, C)
      const cls = ops.expand(this.cls_token, [b, 1, this.cfg.hiddenSize]); // (B, 1, C)
      const x = ops.add(ops.concat([cls, patches], 1), this.position_embeddings); // (B, N + 1, C)
      return ops.dropout(x, this.cfg.hiddenDropoutProb, this.training);
    });
  }
}

export class ViTAttention extends Module {
  q_proj: LinearLike;
  k_proj: LinearLike;
  v_proj: LinearLike;
  o_proj: LinearLike;

  constructor(
    readonly cfg: ViTConfig,
    opts: InitOpts,
  ) {
    super();
    const c = cfg.hiddenSize;
    this.q_proj = new Linear(c, c, { ...opts, bias: cfg.qkvBias });
    this.k_proj = new Linear(c, c, { ...opts, bias: cfg.qkvBias });
    this.v_proj = new Linear(c, c, { ...opts, bias: cfg.qkvBias });
    this.o_proj = new Linear(c, c, opts);
  }

  forward(x: Tensor): Tensor {
    const [b, t, c] = x.shape as [number, number, number];
    const h = this.cfg.numAttentionHeads;
    return scope(() => {
      const heads = (p: LinearLike) => ops.reshape(p.forward(x), [b, t, h, c / h]); // (B, T, H, D)
      const y = ops.attention(heads(this.q_proj), heads(this.k_proj), heads(this.v_proj), {
        dropout: this.cfg.attentionProbsDropoutProb,
        training: this.training,
        lowPrecision: hasBf16Weights(this),
      }); // (B, T, H, D)
      return ops.dropout(this.o_proj.forward(ops.reshape(y, [b, t, c])), this.cfg.hiddenDropoutProb, this.training);
    });
  }
}

export class ViTMLP extends Module {
  fc1: LinearLike;
  fc2: LinearLike;

  constructor(
    readonly cfg: ViTConfig,
    opts: InitOpts,
  ) {
    super();
    this.fc1 = new Linear(cfg.hiddenSize, cfg.intermediateSize, opts);
    this.fc2 = new Linear(cfg.intermediateSize, cfg.hiddenSize, opts);
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      const y = this.fc2.forward(this.cfg.hiddenAct(this.fc1.forward(x))); // (B, T, C)
      return ops.dropout(y, this.cfg.hiddenDropoutProb, this.training);
    });
  }
}

export class ViTLayer extends Module {
  layernorm_before: LayerNorm;
  attention: ViTAttention;
  layernorm_after: LayerNorm;
  mlp: ViTMLP;

  constructor(cfg: ViTConfig, opts: InitOpts) {
    super();
    this.layernorm_before = new LayerNorm(cfg.hiddenSize, cfg.layerNormEps, opts);
    this.attention = new ViTAttention(cfg, opts);
    this.layernorm_after = new LayerNorm(cfg.hiddenSize, cfg.layerNormEps, opts);
    this.mlp = new ViTMLP(cfg, opts);
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      const h = ops.add(this.attention.forward(this.layernorm_before.forward(x)), x); // (B, T, C)
      return ops.add(this.mlp.forward(this.layernorm_after.forward(h)), h); // (B, T, C)
    });
  }
}

export class ViTModel extends Module {
  embeddings: ViTEmbeddings;
  layers: ViTLayer[];
  layernorm: LayerNorm;

  constructor(cfg: ViTConfig, opts: InitOpts) {
    super();
    this.embeddings = new ViTEmbeddings(cfg, opts);
    this.layers = Array.from({ length: cfg.numHiddenLayers }, () => new ViTLayer(cfg, opts));
    this.layernorm = new LayerNorm(cfg.hiddenSize, cfg.layerNormEps, opts);
  }

  /** Last hidden states (B, N + 1, C). */
  forward(pixels: Tensor): Tensor {
    return scope(() =>
      this.layernorm.forward(
        this.layers.reduce((h, l) => blockForward(this, l, (y) => l.forward(y), h), this.embeddings.forward(pixels)),
      ),
    );
  }
}

export class ViTForImageClassification extends PreTrainedModel {
  readonly modelType = 'vit';
  readonly architecture = 'ViTForImageClassification';
  readonly task: Task = 'image-classification';
  readonly cfg: ViTConfig;
  vit: ViTModel;
  classifier: LinearLike;

  constructor(config: HFConfig, opts: InitOpts = {}) {
    super(config);
    this.cfg = parseViTConfig(config);
    this.vit = new ViTModel(this.cfg, opts);
    this.classifier = new Linear(this.cfg.hiddenSize, this.cfg.numLabels, opts);
  }

  weightSpec(): WeightSpec {
    return VIT_WEIGHTS;
  }

  forward(inputs: ModelInputs): Tensor {
    if (!inputs.pixelValues) throw new Error('[ViTForImageClassification] forward needs pixelValues');
    const pixels = inputs.pixelValues;
    return scope(() => floatLogits(this.classifier.forward(firstToken(this.vit.forward(pixels))))); // (B, numLabels)
  }
}
