// The README's library example: VeRA on a Hugging Face causal LM, a few training steps, PEFT-format
// save, reload, merge, and a merged checkpoint transformers can load. Run after `npm run build`:
//   node dist/examples/vera-finetune.js [MODEL_DIR] [OUT_DIR]

import { PeftModel, backward, getPeftModel, loadModel, ops, optim, scope, tensor, veraConfig } from 'vera-ts';

const modelDir = process.argv[2] ?? 'test/parity/fixtures/models/llama-lm'; // any HF causal LM directory
const out = process.argv[3] ?? 'runs/example';

const model = loadModel(modelDir);
const peft = getPeftModel(model, veraConfig({ r: 16, target_modules: ['q_proj', 'v_proj'] }));
console.log(peft.trainableParametersSummary());

const ids = tensor([[5, 17, 42, 8, 99, 3, 64]], { dtype: 'i32' }); // (1, T) token ids
const opt = new optim.AdamW(
  peft.trainableParameters().map(([, t]) => t),
  { lr: 1e-2 },
);
for (let step = 0; step < 20; step++) {
  const loss = scope(() => {
    const logits = peft.forward({ inputIds: ops.slice(ids, 1, 0, -1) }); // (1, T-1, V)
    const l = ops.crossEntropy(logits, ops.slice(ids, 1, 1)); // next-token loss
    backward(l);
    opt.step();
    opt.zeroGrad();
    return l.item();
  });
  if (step % 5 === 0) console.log(`step ${step}: loss ${loss.toFixed(4)}`);
}

peft.savePretrained(`${out}/adapter`); // adapter_config.json + adapter_model.safetensors, as PEFT writes them
const reloaded = PeftModel.fromPretrained(loadModel(modelDir), `${out}/adapter`);
reloaded.mergeAndUnload().savePretrained(`${out}/merged`); // W + ΔW, loadable by transformers
console.log(`adapter: ${peft.adapterBytes()} bytes of tensors; merged model in ${out}/merged`);
