// ONNX Runtime (npm onnxruntime-node, its bundled CPU library) timing one UNet forward, for
// bench/peer_speed.sh: medians of `reps` runs on a batch at t = 500. Benchmark only.
//
//   node bench/peer/ort_bench.js MODEL.onnx BATCH REPS THREADS SPIN(1|0) [CHANNELS SIZE [TEXT_LENGTH TEXT_WIDTH]]
// (a text UNet takes encoder_hidden_states of TEXT_LENGTH x TEXT_WIDTH per image)
const ort = require('onnxruntime-node');

async function main() {
  const [model, batchS, repsS, threadsS, spinS, chS, sizeS, lenS, widthS] = process.argv.slice(2);
  const batch = +batchS, reps = +repsS, threads = +threadsS, spin = spinS === '1';
  const ch = +(chS || 1), size = +(sizeS || 32);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: {session: {intra_op: {allow_spinning: spin ? '1' : '0'}}},
  });
  const x = new Float32Array(batch * ch * size * size);
  for (let i = 0; i < x.length; ++i) x[i] = Math.random() * 2 - 1;
  const feeds = {
    sample: new ort.Tensor('float32', x, [batch, ch, size, size]),
    timestep: new ort.Tensor('float32', new Float32Array(batch).fill(500), [batch]),
  };
  if (session.inputNames.includes('encoder_hidden_states')) {
    const len = +lenS, width = +widthS, text = new Float32Array(batch * len * width);
    for (let i = 0; i < text.length; ++i) text[i] = Math.random() * 2 - 1;
    feeds.encoder_hidden_states = new ort.Tensor('float32', text, [batch, len, width]);
  }
  if (session.inputNames.includes('class_labels'))
    feeds.class_labels = new ort.Tensor('int64', new BigInt64Array(batch), [batch]);
  for (let i = 0; i < 3; ++i) await session.run(feeds);
  const ms = [];
  for (let i = 0; i < reps; ++i) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ms.sort((a, b) => a - b);
  console.log(JSON.stringify({what: `onnxruntime ${ort.env.versions.common} fp32 (spinning ${spin ? 'on' : 'off'})`,
                              batch, median_ms: ms[Math.floor(ms.length / 2)], min_ms: ms[0], threads,
                              peak_rss_mib: process.resourceUsage().maxRSS / 1024}));
}
main().catch(e => { console.error(e); process.exit(1); });
