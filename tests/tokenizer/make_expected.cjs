// Cross-check generator for the WordPiece tests: runs the independent JavaScript BertTokenizer of
// @huggingface/transformers (test-only, never a build dependency) over tests/tokenizer/cases.json and writes
// the expected ids to tests/fixtures/wordpiece_expected.json, for the full BERT uncased vocab.txt and for the small
// fixture vocabulary tests/fixtures/wordpiece_vocab_small.txt (which this script also writes: the tokens the cases
// need, in the full vocabulary's order, so the C++ tests run without the real vocabulary).
//
// Regenerate (see README.md):
//   mkdir -p /tmp/hfx && (cd /tmp/hfx && npm init -y && npm install --ignore-scripts @huggingface/transformers@4.3.1)
//   scripts/fetch_vocab.sh data/vocab
//   node tests/tokenizer/make_expected.cjs /tmp/hfx data/vocab/vocab.txt
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { createRequire } = require('module');

const [hfDir, vocabPath] = process.argv.slice(2);
if (!hfDir || !vocabPath) {
  console.error('usage: node make_expected.cjs HF_INSTALL_DIR VOCAB_TXT');
  process.exit(2);
}
const here = __dirname;
const repoTests = path.resolve(here, '..');
const casesPath = path.join(here, 'cases.json');
const smallVocabPath = path.join(repoTests, 'fixtures', 'wordpiece_vocab_small.txt');
const outPath = path.join(repoTests, 'fixtures', 'wordpiece_expected.json');

const hfRequire = createRequire(path.resolve(hfDir) + '/');
const transformers = hfRequire('@huggingface/transformers');
const { BertTokenizer } = transformers;
const hfVersion = JSON.parse(fs.readFileSync(
  path.join(path.resolve(hfDir), 'node_modules', '@huggingface', 'transformers', 'package.json'), 'utf8')).version;

const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

function readVocab(file) {
  const text = fs.readFileSync(file, 'utf8');
  const tokens = text.split('\n');
  if (tokens[tokens.length - 1] === '') tokens.pop();
  return tokens;
}

function makeTokenizer(tokens, lowercase) {
  const vocab = {};
  tokens.forEach((t, i) => { vocab[t] = i; });
  const added = SPECIALS.filter((s) => s in vocab).map((s) => ({
    id: vocab[s], content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  }));
  const tokenizerJSON = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: null,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: false },
    model: {
      type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab,
    },
  };
  const config = {
    do_lower_case: lowercase, unk_token: '[UNK]', cls_token: '[CLS]', sep_token: '[SEP]', pad_token: '[PAD]',
    mask_token: '[MASK]', clean_up_tokenization_spaces: false, model_max_length: 1000000,
  };
  return new BertTokenizer(tokenizerJSON, config);
}

function caseText(c) {
  if (c.text !== undefined) return c.text;
  // Invalid UTF-8: the WHATWG decoder replaces each maximal ill-formed subpart by U+FFFD, as our reader does.
  return new TextDecoder('utf-8', { fatal: false }).decode(Buffer.from(c.hex, 'hex'));
}

function run(tok, text) {
  const ids = tok.encode(text, { add_special_tokens: false });
  const decoded = ids.length ? tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : '';
  return { ids, decoded };
}

const cases = JSON.parse(fs.readFileSync(casesPath, 'utf8'));
const fullTokens = readVocab(vocabPath);
const fullBytes = fs.readFileSync(vocabPath);
const full = { uncased: makeTokenizer(fullTokens, true), cased: makeTokenizer(fullTokens, false) };

// The small vocabulary: specials, printable ASCII in both forms, and every token the cases use.
const needed = new Set(SPECIALS);
for (let c = 33; c < 127; ++c) {
  needed.add(String.fromCharCode(c));
  needed.add('##' + String.fromCharCode(c));
}
for (const c of cases) {
  for (const mode of ['uncased', 'cased']) {
    for (const id of run(full[mode], caseText(c)).ids) needed.add(fullTokens[id]);
  }
}
const smallTokens = fullTokens.filter((t) => needed.has(t));
const smallText = smallTokens.join('\n') + '\n';
fs.writeFileSync(smallVocabPath, smallText);
const small = { uncased: makeTokenizer(smallTokens, true), cased: makeTokenizer(smallTokens, false) };

const out = {
  generator: `tests/tokenizer/make_expected.cjs with @huggingface/transformers@${hfVersion} BertTokenizer, node ${process.version}`,
  full_vocab_sha256: sha256(fullBytes),
  small_vocab_sha256: sha256(Buffer.from(smallText, 'utf8')),
  cases: [],
};
for (const c of cases) {
  const entry = { name: c.name };
  if (c.text !== undefined) entry.text = c.text; else entry.hex = c.hex;
  for (const mode of ['uncased', 'cased']) {
    const f = run(full[mode], caseText(c));
    const s = run(small[mode], caseText(c));
    entry[mode] = { full: f.ids, full_tokens: f.ids.map((i) => fullTokens[i]), full_decoded: f.decoded,
                    small: s.ids, small_decoded: s.decoded };
  }
  out.cases.push(entry);
}

// One case per line block, ids on one line: readable diffs.
const lines = [];
lines.push('{');
lines.push(`  "generator": ${JSON.stringify(out.generator)},`);
lines.push(`  "full_vocab_sha256": ${JSON.stringify(out.full_vocab_sha256)},`);
lines.push(`  "small_vocab_sha256": ${JSON.stringify(out.small_vocab_sha256)},`);
lines.push('  "cases": [');
out.cases.forEach((e, k) => {
  const parts = [`    {"name": ${JSON.stringify(e.name)},`];
  parts.push(e.text !== undefined ? `     "text": ${JSON.stringify(e.text)},` : `     "hex": ${JSON.stringify(e.hex)},`);
  for (const [j, mode] of ['uncased', 'cased'].entries()) {
    const m = e[mode];
    parts.push(`     "${mode}": {"full": ${JSON.stringify(m.full)},`);
    parts.push(`       "full_tokens": ${JSON.stringify(m.full_tokens)},`);
    parts.push(`       "full_decoded": ${JSON.stringify(m.full_decoded)},`);
    parts.push(`       "small": ${JSON.stringify(m.small)},`);
    parts.push(`       "small_decoded": ${JSON.stringify(m.small_decoded)}}${j === 0 ? ',' : ''}`);
  }
  parts.push(`    }${k + 1 < out.cases.length ? ',' : ''}`);
  lines.push(parts.join('\n'));
});
lines.push('  ]');
lines.push('}');
fs.writeFileSync(outPath, lines.join('\n') + '\n');
JSON.parse(fs.readFileSync(outPath, 'utf8'));
console.log(`wrote ${outPath} (${out.cases.length} cases) and ${smallVocabPath} (${smallTokens.length} tokens)`);
