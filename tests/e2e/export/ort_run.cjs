// Runs ONNX files with onnxruntime-node (the bundled CPU runtime) for tests/e2e/export/export_clients_test.py.
//   node ort_run.cjs REQUEST.json
// REQUEST: {"runs": [{"model": "a.onnx", "inputs": {"input_ids": {"dims": [B, N], "data": [...]}, ...},
//                     "out": "result.f32"}]}
// Each run writes its `logits` output as raw little-endian float32 to `out` and its dims to `out`.json, so the
// comparison happens in Python on the exact floats onnxruntime produced.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

async function main() {
  const req = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const sessions = new Map();
  for (const run of req.runs) {
    if (!sessions.has(run.model)) sessions.set(run.model, await ort.InferenceSession.create(run.model));
    const session = sessions.get(run.model);
    const feeds = {};
    for (const [name, t] of Object.entries(run.inputs)) {
      feeds[name] = new ort.Tensor('int64', BigInt64Array.from(t.data.map((v) => BigInt(v))), t.dims);
    }
    const result = await session.run(feeds);
    const logits = result.logits;
    fs.writeFileSync(run.out, Buffer.from(logits.data.buffer, logits.data.byteOffset, logits.data.byteLength));
    fs.writeFileSync(run.out + '.json', JSON.stringify({ dims: logits.dims, inputs: session.inputNames }));
  }
}

main().catch((e) => { console.error(`ort_run: ${e.stack || e}`); process.exit(1); });
