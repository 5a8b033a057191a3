// A classifier's output for people: class names from config.json's id2label, and probabilities best first.

export interface LabelScore {
  label: string;
  id: number;
  score: number;
}

/** Softmax in float64 (max-subtracted), so the probabilities sum to 1 up to rounding. */
export function softmax(logits: readonly number[]): number[] {
  const max = Math.max(...logits);
  const exps = logits.map((x) => Math.exp(x - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

/** config.json's id2label name of each class; transformers' LABEL_i where it has none. */
export function labelNames(config: Record<string, unknown>, n: number): string[] {
  const map = config['id2label'];
  const table = map !== null && typeof map === 'object' && !Array.isArray(map) ? (map as Record<string, unknown>) : {};
  return Array.from({ length: n }, (_, i) => {
    const name = table[String(i)];
    return typeof name === 'string' ? name : `LABEL_${i}`;
  });
}

/** The labels sorted by probability, best first (ties keep the lower id first). */
export function rankLabels(logits: readonly number[], names: readonly string[]): LabelScore[] {
  const probs = softmax(logits);
  return probs.map((score, id) => ({ label: names[id]!, id, score })).sort((a, b) => b.score - a.score || a.id - b.id);
}
