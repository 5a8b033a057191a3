// BERT and RoBERTa: config, modules and checkpoint-key mapping.

export { type BertConfig, type BertVariant, parseBertConfig } from './config.js';
export {
  BertAttention,
  BertEmbeddings,
  BertEncoder,
  BertForSequenceClassification,
  BertIntermediate,
  BertLayer,
  BertModel,
  BertPooler,
  BertResidualOutput,
  BertSelfAttention,
  RobertaClassificationHead,
  RobertaForSequenceClassification,
} from './model.js';
export { bertWeights } from './weights.js';
