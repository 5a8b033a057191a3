// Which modules an adapter wraps, by PEFT's rules (tuners_utils.check_target_module_exists): a list
// of names matches a module whose path equals or ends with ".name"; a string is a regular expression
// that must match the whole path; layers_to_transform / layers_pattern filter list targets by layer
// index; modules named in modules_to_save are never wrapped.

export interface TargetSpec {
  target_modules: string[] | string | null;
  layers_to_transform: number[] | number | null;
  layers_pattern: string[] | string | null;
  modules_to_save: string[] | null;
}

/** Python's re.fullmatch for the regex subset PEFT configs use (JS syntax is a superset for these). */
export function fullMatch(pattern: string, key: string): boolean {
  return new RegExp(`^(?:${pattern})$`, 'u').test(key);
}

/** The layer index PEFT reads from a module path (re.match of `.*\.<pattern>\.(\d+)\.`), or null. */
export function layerIndex(key: string, patterns: string[] | null): number | null {
  const regexes =
    patterns && patterns.length > 0 ? patterns.map((p) => `^.*\\.${p}\\.(\\d+)\\.`) : ['^.*\\.[^.]*\\.(\\d+)\\.'];
  for (const r of regexes) {
    const m = new RegExp(r, 'u').exec(key);
    if (m) return Number(m[1]);
  }
  return null;
}

export function isTargeted(spec: TargetSpec, key: string): boolean {
  if (matchesModulesToSave(spec.modules_to_save, key)) return false;
  const t = spec.target_modules;
  if (t === null) return false;
  if (typeof t === 'string') return fullMatch(t, key);
  if (t.includes(key)) return true;
  if (!t.some((name) => key.endsWith(`.${name}`))) return false;
  const layers = spec.layers_to_transform;
  if (layers === null || (Array.isArray(layers) && layers.length === 0)) return true;
  const patterns =
    spec.layers_pattern === null
      ? null
      : typeof spec.layers_pattern === 'string'
        ? [spec.layers_pattern]
        : spec.layers_pattern;
  const idx = layerIndex(key, patterns);
  if (idx === null) return false;
  return typeof layers === 'number' ? idx === layers : layers.includes(idx);
}

/** PEFT's rule for modules_to_save: the path equals or ends with ".name". */
export function matchesModulesToSave(names: string[] | null, key: string): boolean {
  return names !== null && names.some((n) => key === n || key.endsWith(`.${n}`));
}

/** The entry of a rank/alpha pattern dict that applies to a module path (PEFT's get_pattern_key). */
export function patternKey(patterns: Record<string, unknown>, key: string): string | null {
  for (const p of Object.keys(patterns)) {
    if (new RegExp(`^(?:.*\\.)?(?:${p})$`, 'u').test(key)) return p;
  }
  return null;
}
