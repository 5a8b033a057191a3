// The Llama family (Llama, Mistral, Qwen2) as transformers builds it: RMSNorm pre-norm blocks, rotary
// attention with grouped-query heads (and Mistral/Qwen2 sliding windows), SiLU-gated MLP; causal-LM
// and sequence-classification heads. Module names are HF's, so parameter names are checkpoint keys.

import { blockForward } from '../blocks.js';
import { type InitOpts, Embedding, Linear, type LinearLike, RMSNorm } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import * as ops from '../../ops/index.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { floatLogits, gatedMul, lmOutput, idsShape, keyMask, lastNonPadIndex, poolAt } from '../common.js';
import type { HFConfig } from '../config-utils.js';
import { type LayerCache, type ModelInputs, PreTrainedModel, type Task, type WeightSpec } from '../pretrained.js';
import { DeviceConstant } from '../positions.js';
import { inverseFrequencies, ropeTables } from '../rope.js';
import { type LlamaConfig, type LlamaVariant, parseLlamaConfig } from './config.js';
import { LLAMA_WEIGHTS, llamaTiedWeights } from './weights.js';
import { hasBf16Weights } from '../storage.js';

export interface RopeTables {
  cos: Tensor; // (B or 1, T, D/2)
  sin: Tensor; // (B or 1, T, D/2)
}

/** What every layer of one forward shares. */
interface LayerContext extends RopeTables {
  mask: Tensor | null; // bool (B, Tk)
  cache: LayerCache | undefined;
}

export class LlamaAttention extends Module {
  q_proj: LinearLike;
  k_proj: LinearLike;
  v_proj: LinearLike;
  o_proj: LinearLike;

  constructor(
    readonly cfg: LlamaConfig,
    readonly layerIdx: number,
    opts: InitOpts,
  ) {
    super();
    const { hiddenSize: c, numAttentionHeads: h, numKeyValueHeads: hkv, headDim: d } = cfg;
    this.q_proj = new Linear(c, h * d, { ...opts, bias: cfg.qkvBias });
    this.k_proj = new Linear(c, hkv * d, { ...opts, bias: cfg.qkvBias });
    this.v_proj = new Linear(c, hkv * d, { ...opts, bias: cfg.qkvBias });
    this.o_proj = new Linear(h * d, c, { ...opts, bias: cfg.oProjBias });
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    const [b, t] = x.shape as [number, number, number];
    const { numAttentionHeads: h, numKeyValueHeads: hkv, headDim: d } = this.cfg;
    return scope(() => {
      const q = ops.rope(ops.reshape(this.q_proj.forward(x), [b, t, h, d]), ctx.cos, ctx.sin); // (B, T, H, D)
      const k = ops.rope(ops.reshape(this.k_proj.forward(x), [b, t, hkv, d]), ctx.cos, ctx.sin); // (B, T, Hkv, D)
      const v = ops.reshape(this.v_proj.forward(x), [b, t, hkv, d]); // (B, T, Hkv, D)
      const kv = ctx.cache ? ctx.cache.update(this.layerIdx, k, v) : { k, v }; // (B, Tk, Hkv, D)
      const window = this.cfg.windows[this.layerIdx]!;
      const y = ops.attention(q, kv.k, kv.v, {
        causal: true,
        window,
        keyMask: ctx.mask,
        dropout: this.cfg.attentionDropout,
        training: this.training,
        lowPrecision: hasBf16Weights(this),
      }); // (B, T, H, D)
      return this.o_proj.forward(ops.reshape(y, [b, t, h * d])); // (B, T, C)
    });
  }
}

export class LlamaMLP extends Module {
  gate_proj: LinearLike;
  up_proj: LinearLike;
  down_proj: LinearLike;

  constructor(
    readonly cfg: LlamaConfig,
    opts: InitOpts,
  ) {
    super();
    const { hiddenSize: c, intermediateSize: m, mlpBias: bias } = cfg;
    this.gate_proj = new Linear(c, m, { ...opts, bias });
    this.up_proj = new Linear(c, m, { ...opts, bias });
    this.down_proj = new Linear(m, c, { ...opts, bias });
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      const gated = gatedMul(this.cfg.hiddenAct, this.gate_proj.forward(x), this.up_proj.forward(x)); // (B, T, M)
      return this.down_proj.forward(gated); // (B, T, C)
    });
  }
}

export class LlamaDecoderLayer extends Module {
  self_attn: LlamaAttention;
  mlp: LlamaMLP;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;

  constructor(cfg: LlamaConfig, layerIdx: number, opts: InitOpts) {
    super();
    this.self_attn = new LlamaAttention(cfg, layerIdx, opts);
    this.mlp = new LlamaMLP(cfg, opts);
    this.input_layernorm = new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps, opts);
    this.post_attention_layernorm = new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps, opts);
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    return scope(() => {
      const h = ops.add(x, this.self_attn.forward(this.input_layernorm.forward(x), ctx)); // (B, T, C)
      return ops.add(h, this.mlp.forward(this.post_attention_layernorm.forward(h))); // (B, T, C)
    });
  }
}

export class LlamaModel extends Module {
  embed_tokens: Embedding;
  layers: LlamaDecoderLayer[];
  norm: RMSNorm;
  /** RoPE inverse frequencies (D/2), from the config; a plain array, not a parameter. */
  invFreq: Float32Array;
  /** The same on the device, uploaded on the first forward (the tree is built on a skeleton backend). */
  readonly #invFreqOnDevice: DeviceConstant;

  constructor(
    readonly cfg: LlamaConfig,
    opts: InitOpts,
  ) {
    super();
    this.embed_tokens = new Embedding(cfg.vocabSize, cfg.hiddenSize, { ...opts, std: 0.02 });
    this.layers = Array.from({ length: cfg.numHiddenLayers }, (_, i) => new LlamaDecoderLayer(cfg, i, opts));
    this.norm = new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps, opts);
    this.invFreq = inverseFrequencies(cfg.rope, cfg.headDim);
    this.#invFreqOnDevice = new DeviceConstant(this.invFreq);
  }

  protected override disposeBuffers(): void {
    this.#invFreqOnDevice.dispose();
  }

  /** Final hidden states (B, T, C); `rope` tables as from withRope (made here when omitted). */
  forward(inputs: ModelInputs, rope?: RopeTables): Tensor {
    if (!rope) return this.withRope(inputs, (r) => this.forward(inputs, r));
    const ids = inputs.inputIds!;
    return scope(() => {
      let x = this.embed_tokens.forward(ids); // (B, T, C)
      const ctx: LayerContext = { ...rope, mask: keyMask(inputs.attentionMask), cache: inputs.cache };
      for (const layer of this.layers) {
        const run = (h: Tensor, cos: Tensor, sin: Tensor, mask?: Tensor) =>
          layer.forward(h, { ...ctx, cos, sin, mask: mask ?? null });
        x = blockForward(this, layer, run as (h: Tensor, ...m: Tensor[]) => Tensor, x, [ctx.cos, ctx.sin, ctx.mask]);
      }
      return this.norm.forward(x); // (B, T, C)
    });
  }

  /** Runs fn with the RoPE tables of `inputs` (positionIds, else arange after the cached tokens). */
  withRope(inputs: ModelInputs, fn: (rope: RopeTables) => Tensor): Tensor {
    const [, t] = idsShape(inputs.inputIds, 'LlamaModel');
    const past = inputs.cache?.length ?? 0;
    return scope(() =>
      fn(
        ropeTables(
          this.#invFreqOnDevice.on(inputs.inputIds!.backend),
          inputs.positionIds ?? { start: past, length: t },
          this.cfg.rope.attentionFactor,
        ),
      ),
    );
  }
}

abstract class LlamaPreTrainedModel extends PreTrainedModel {
  readonly modelType: LlamaVariant;
  readonly cfg: LlamaConfig;

  constructor(config: HFConfig, variant: LlamaVariant) {
    super(config);
    this.modelType = variant;
    this.cfg = parseLlamaConfig(config, variant);
  }

  weightSpec(): WeightSpec {
    return LLAMA_WEIGHTS;
  }
}

/** LlamaForCausalLM and its Mistral/Qwen2 twins (same module tree, different config semantics). */
export abstract class DecoderForCausalLM extends LlamaPreTrainedModel {
  readonly task: Task = 'causal-lm';
  model: LlamaModel;
  lm_head: LinearLike;

  constructor(config: HFConfig, variant: LlamaVariant, opts: InitOpts) {
    super(config, variant);
    this.model = new LlamaModel(this.cfg, opts);
    const head = new Linear(this.cfg.hiddenSize, this.cfg.vocabSize, { ...opts, bias: false });
    if (this.cfg.tieWordEmbeddings) {
      head.weight.dispose();
      head.weight = this.model.embed_tokens.weight;
    }
    this.lm_head = head;
  }

  override tiedWeights(): [string, string][] {
    return llamaTiedWeights(this.cfg.tieWordEmbeddings);
  }

  forward(inputs: ModelInputs): Tensor {
    return this.model.withRope(inputs, (rope) => {
      let hidden = this.model.forward(inputs, rope); // (B, T, C)
      if (inputs.logitsToKeep) hidden = ops.slice(hidden, 1, -inputs.logitsToKeep);
      return lmOutput(this.lm_head, hidden, inputs.lossTargets); // (B, T, V), or the loss (B, T)
    });
  }
}

/** Sequence classification on the last non-padding token (transformers' GenericForSequenceClassification). */
export abstract class DecoderForSequenceClassification extends LlamaPreTrainedModel {
  readonly task: Task = 'sequence-classification';
  model: LlamaModel;
  score: LinearLike;

  constructor(config: HFConfig, variant: LlamaVariant, opts: InitOpts) {
    super(config, variant);
    this.model = new LlamaModel(this.cfg, opts);
    this.score = new Linear(this.cfg.hiddenSize, this.cfg.numLabels, { ...opts, bias: false });
  }

  forward(inputs: ModelInputs): Tensor {
    idsShape(inputs.inputIds, this.architecture);
    return this.model.withRope(inputs, (rope) => {
      const index = lastNonPadIndex(inputs.inputIds!, this.cfg.padTokenId, this.architecture); // (B)
      return floatLogits(this.score.forward(poolAt(this.model.forward(inputs, rope), index))); // (B, numLabels)
    });
  }
}

export class LlamaForCausalLM extends DecoderForCausalLM {
  readonly architecture = 'LlamaForCausalLM';
  constructor(config: HFConfig, opts: InitOpts = {}) {
    super(config, 'llama', opts);
  }
}

export class MistralForCausalLM extends DecoderForCausalLM {
  readonly architecture = 'MistralForCausalLM';
  constructor(config: HFConfig, opts: InitOpts = {}) {
    super(config, 'mistral', opts);
  }
}

export class Qwen2ForCausalLM extends DecoderForCausalLM {
  readonly architecture = 'Qwen2ForCausalLM';
  constructor(config: HFConfig, opts: InitOpts = {}) {
    super(config, 'qwen2', opts);
  }
}

export class LlamaForSequenceClassification extends DecoderForSequenceClassification {
  readonly architecture = 'LlamaForSequenceClassification';
  constructor(config: HFConfig, opts: InitOpts = {}) {
    super(config, 'llama', opts);
  }
}

export class MistralForSequenceClassification extends DecoderForSequenceClassification {
  readonly architecture = 'MistralForSequenceClassification';
  constructor(config: HFConfig, opts: InitOpts = {}) {
    super(config, 'mistral', opts);
  }
}

export class Qwen2ForSequenceClassification extends DecoderForSequenceClassification {
  readonly architecture = 'Qwen2ForSequenceClassification';
  constructor(config: HFConfig, opts: InitOpts = {}) {
    super(config, 'qwen2', opts);
  }
}
