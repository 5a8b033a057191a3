// The Llama family (Llama, Mistral, Qwen2): config, modules and checkpoint-key mapping.

export { type LlamaConfig, type LlamaVariant, parseLlamaConfig } from './config.js';
export {
  DecoderForCausalLM,
  DecoderForSequenceClassification,
  LlamaAttention,
  LlamaDecoderLayer,
  LlamaForCausalLM,
  LlamaForSequenceClassification,
  LlamaMLP,
  LlamaModel,
  MistralForCausalLM,
  MistralForSequenceClassification,
  Qwen2ForCausalLM,
  Qwen2ForSequenceClassification,
  type RopeTables,
} from './model.js';
export { LLAMA_WEIGHTS, llamaTiedWeights } from './weights.js';
