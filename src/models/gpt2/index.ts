// GPT-2: config, modules and checkpoint-key mapping.

export { type GPT2Config, parseGPT2Config } from './config.js';
export {
  GPT2Attention,
  GPT2Block,
  GPT2ForSequenceClassification,
  GPT2LMHeadModel,
  GPT2MLP,
  GPT2Model,
} from './model.js';
export { GPT2_WEIGHTS, gpt2TiedWeights } from './weights.js';
