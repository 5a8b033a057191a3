// Many adapters on one base model, served in one batch. Each "user" gets a VeRA adapter, trained for a
// few steps to continue their own token sequence; the adapters share one random pair A, B (one seed), so
// each is only its λ vectors. Then one forward runs every row of a batch on its own adapter
// (PeftModel.withAdapterNames, as `vera serve` does) and each row predicts its own user's next token.
// Run after `npm run build`:
//   node dist/examples/many-adapters.js [MODEL_DIR]

import {
  BASE_ADAPTER,
  backward,
  getPeftModel,
  loadModel,
  noGrad,
  ops,
  optim,
  scope,
  tensor,
  veraConfig,
} from 'vera-ts';

const modelDir = process.argv[2] ?? 'test/parity/fixtures/models/llama-lm'; // any HF causal LM directory
const users: Record<string, number[]> = {
  ada: [5, 17, 42, 8, 99, 3],
  bob: [64, 12, 7, 7, 31, 90],
  cy: [2, 88, 45, 19, 60, 11],
};
// save_projection false: an adapter file holds its λ vectors only; A and B come back from the seed.
const config = () => veraConfig({ r: 16, target_modules: ['q_proj', 'v_proj', 'down_proj'], save_projection: false });
const names = Object.keys(users);
const ids = (rows: number[][]) => tensor(rows, { dtype: 'i32' });

const peft = getPeftModel(loadModel(modelDir), config(), { adapterName: names[0]! });
for (const [i, name] of names.entries()) {
  if (i > 0) peft.addAdapter(name, config()); // the new adapter is the trainable one
  peft.setAdapter(name);
  const seq = ids([users[name]!]);
  const opt = new optim.AdamW(
    peft.trainableParameters().map(([, t]) => t),
    { lr: 5e-2 },
  );
  for (let step = 0; step < 40; step++)
    scope(() => {
      backward(ops.crossEntropy(peft.forward({ inputIds: ops.slice(seq, 1, 0, -1) }), ops.slice(seq, 1, 1)));
      opt.step();
      opt.zeroGrad();
    });
}
console.log(`${names.length} adapters of ${peft.adapterBytes()} bytes each on one base model`);

// One batch: each user's sequence without its last token, on that user's adapter, and one row on the base.
peft.model.eval();
const rows = [...names, BASE_ADAPTER];
const prompts = rows.map((n) => (users[n] ?? users[names[0]!]!).slice(0, -1));
const logits = noGrad(() =>
  scope(() => peft.withAdapterNames(rows, () => peft.model.forward({ inputIds: ids(prompts) })).toArray()),
) as Float32Array;
const [, t, v] = [rows.length, prompts[0]!.length, logits.length / rows.length / prompts[0]!.length];
rows.forEach((name, r) => {
  const last = logits.subarray((r * t + t - 1) * v, (r * t + t) * v);
  const predicted = last.indexOf(Math.max(...last));
  const wanted = (users[name] ?? users[names[0]!]!).at(-1);
  console.log(
    `${name}: next token ${predicted}${name === BASE_ADAPTER ? '' : ` (${users[name]!.at(-1)} taught)`}${predicted === wanted ? ' ✓' : ''}`,
  );
});
