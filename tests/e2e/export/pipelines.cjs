// Transformers.js on an exported folder, offline, for tests/e2e/export/export_clients_test.py.
//   node pipelines.cjs REQUEST.json OUT.json
// REQUEST: {"task": "fill-mask" | "text-classification", "folder": "/abs/path/to/export", "texts": [...],
//           "top_k": 5}
// OUT: {"ids": [[...]] (the pipeline tokenizer's ids of each text, special tokens included),
//       "results": the pipeline's own output for each text (one call per text, so no padding),
//       "logits": {"dims": [...], "data": [...]} of pipe.model on the padded batch of all texts,
//       "batch_ids": the padded batch's input_ids, "batch_mask": its attention_mask}
'use strict';
const fs = require('fs');
const path = require('path');
const { env, pipeline } = require(path.join(__dirname, 'node_modules', '@huggingface', 'transformers'));

async function main() {
  const [reqPath, outPath] = process.argv.slice(2);
  const req = JSON.parse(fs.readFileSync(reqPath, 'utf8'));
  // Offline: the model id is a folder under localModelPath; nothing may be fetched.
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = path.dirname(req.folder) + '/';
  const pipe = await pipeline(req.task, path.basename(req.folder));
  const out = { ids: [], results: [] };
  for (const text of req.texts) {
    const enc = pipe.tokenizer(text);
    out.ids.push(Array.from(enc.input_ids.data, (v) => Number(v)));
    // text-classification answers [{label, score}] for one text at top_k 1
    out.results.push(req.task === 'fill-mask' ? await pipe(text, { top_k: req.top_k || 5 }) : (await pipe(text))[0]);
  }
  const batch = pipe.tokenizer(req.texts, { padding: true, truncation: true });
  const { logits } = await pipe.model(batch);
  out.logits = { dims: logits.dims, data: Array.from(logits.data) };
  out.batch_ids = { dims: batch.input_ids.dims, data: Array.from(batch.input_ids.data, (v) => Number(v)) };
  out.batch_mask = { dims: batch.attention_mask.dims, data: Array.from(batch.attention_mask.data, (v) => Number(v)) };
  fs.writeFileSync(outPath, JSON.stringify(out));
}

main().catch((e) => { console.error(`pipelines: ${e.stack || e}`); process.exit(1); });
