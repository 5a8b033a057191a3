// Chat templates: finding a model's Jinja chat template (chat_template.jinja, tokenizer_config.json's
// chat_template, or a processor's chat_template.json) and rendering it with @huggingface/jinja the way
// transformers' apply_chat_template does (messages, add_generation_prompt, special tokens as strings,
// tools/documents none, raise_exception).

import { Template } from '@huggingface/jinja';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { IoError, describeError } from './errors.js';
import { readJsonFile } from './json.js';
import { type TokenizerConfig, SPECIAL_TOKEN_KEYS, additionalSpecialTokens, tokenString } from './tokenizers/config.js';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface RenderOpts {
  /** Append the prompt that opens the assistant's turn (transformers' add_generation_prompt). */
  addGenerationPrompt?: boolean;
  /** Further template variables (e.g. a model-specific flag); they override the defaults. */
  variables?: Record<string, unknown>;
}

/** A parsed chat template together with the file it came from (for error messages). */
export class ChatTemplate {
  private readonly template: Template;

  /** `source` is the Jinja text; `file` names where it came from (a path, or a description). */
  constructor(
    readonly source: string,
    readonly file: string,
  ) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new IoError(`[chat-template] ${file}: cannot parse the chat template: ${describeError(e)}`, {
        file,
        key: 'chat_template',
        cause: e,
      });
    }
  }

  /**
   * Renders the conversation. `config` supplies the special tokens (bos_token, eos_token, …) as strings,
   * as transformers passes its special_tokens_map. A template's raise_exception(msg) becomes an IoError
   * naming the template's file and carrying msg.
   */
  render(messages: readonly ChatMessage[], config: TokenizerConfig = {}, opts: RenderOpts = {}): string {
    const vars: Record<string, unknown> = {
      // Python's jinja sees tools/documents as None, so `tools is not none` is false; leaving them
      // undefined here would make that test true in @huggingface/jinja.
      tools: null,
      documents: null,
      ...specialTokenStrings(config),
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: opts.addGenerationPrompt ?? false,
      ...opts.variables,
    };
    try {
      return this.template.render(vars);
    } catch (e) {
      throw new IoError(`[chat-template] ${this.file}: rendering failed: ${describeError(e)}`, {
        file: this.file,
        key: 'chat_template',
        cause: e,
      });
    }
  }
}

/** The special tokens of a config as template variables (strings; absent ones are left out). */
export function specialTokenStrings(config: TokenizerConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of SPECIAL_TOKEN_KEYS) {
    const s = tokenString(config[k]);
    if (s !== null) out[k] = s;
  }
  const extra = additionalSpecialTokens(config);
  if (extra.length > 0) out['additional_special_tokens'] = extra;
  return out;
}

/**
 * The chat template of a model directory, or null when it has none. Looked for, in transformers'
 * order of precedence: chat_template.jinja, then tokenizer_config.json's "chat_template" (a string, or
 * a list of {name, template} of which "default" is used), then chat_template.json's "chat_template".
 * `config` is the already-read tokenizer_config.json, if the caller has it.
 */
export function loadChatTemplate(dir: string, config?: TokenizerConfig): ChatTemplate | null {
  const jinjaPath = join(dir, 'chat_template.jinja');
  if (existsSync(jinjaPath)) {
    let text: string;
    try {
      text = readFileSync(jinjaPath, 'utf8');
    } catch (e) {
      throw new IoError(`[chat-template] ${jinjaPath}: cannot read: ${describeError(e)}`, {
        file: jinjaPath,
        cause: e,
      });
    }
    return new ChatTemplate(text, jinjaPath);
  }
  const configPath = join(dir, 'tokenizer_config.json');
  const cfg = config ?? (existsSync(configPath) ? (readJsonFile(configPath) as TokenizerConfig) : undefined);
  if (cfg && cfg['chat_template'] !== undefined && cfg['chat_template'] !== null) {
    return new ChatTemplate(pickTemplate(cfg['chat_template'], configPath), configPath);
  }
  const processorPath = join(dir, 'chat_template.json');
  if (existsSync(processorPath)) {
    const json = readJsonFile(processorPath) as Record<string, unknown>;
    if (json && json['chat_template'] !== undefined)
      return new ChatTemplate(pickTemplate(json['chat_template'], processorPath), processorPath);
  }
  return null;
}

/** A chat_template value: a string, or a list of named templates of which "default" is taken. */
export function pickTemplate(value: unknown, file: string): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const names: string[] = [];
    for (const entry of value) {
      const e = entry as { name?: unknown; template?: unknown };
      if (typeof e?.name === 'string') names.push(e.name);
      if (e?.name === 'default' && typeof e.template === 'string') return e.template;
    }
    throw new IoError(
      `[chat-template] ${file}: chat_template lists named templates (${names.join(', ')}) but none is named "default"`,
      {
        file,
        key: 'chat_template',
      },
    );
  }
  throw new IoError(`[chat-template] ${file}: chat_template must be a string or a list of {name, template}`, {
    file,
    key: 'chat_template',
  });
}
