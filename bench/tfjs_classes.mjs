// TF.js predict time of rnnconvert's layer classes against TF.js's own layers, side by side in one process
// (random weights; GRU(64)/LSTM(64), batch 8, 100 steps, 16 features; the median of 7 runs each, cpu backend).
//   python -c "from rnnconvert.formats.tfjs.layers_js import SOURCE; open('/tmp/rl.mjs', 'w').write(SOURCE)"
//   node bench/tfjs_classes.mjs DIR/node_modules/@tensorflow/tfjs /tmp/rl.mjs
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
const [tfjsDir, classes] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const warn = console.warn;
console.warn = () => {};
const tf = require(resolve(tfjsDir));
console.warn = warn;
await tf.setBackend('cpu');
globalThis.tf = tf;
await import(pathToFileURL(resolve(classes)).href);
const cls = (name) => tf.serialization.SerializationMap.getMap().classNameMap[name][0];
const H = 64, F = 16, B = 8, T = 100;
const one = (layer) => {
  const m = tf.sequential();
  m.add(layer);
  return m;
};
const args = {units: H, inputShape: [null, F], returnSequences: true};
const models = {
  'GRU reset_after=False (TF.js GRU)': one(tf.layers.gru(args)),
  'GRU reset_after=True (RnnconvertGRU)': one(new (cls('RnnconvertGRU'))({...args, resetAfter: true})),
  'LSTM (TF.js LSTM)': one(tf.layers.lstm(args)),
  'LSTM initial state (RnnconvertLSTM)': one(new (cls('RnnconvertLSTM'))({...args, initialState: true})),
  'LSTM clip 3 (RnnconvertLSTM, own step)': one(new (cls('RnnconvertLSTM'))({...args, cellClip: 3})),
};
const x = tf.randomNormal([B, T, F]);
const times = {};
for (let r = 0; r < 7; r++) {
  for (const [k, m] of Object.entries(models)) {
    const t0 = performance.now();
    const y = m.predict(x);
    y.dataSync();
    y.dispose();
    (times[k] ??= []).push(performance.now() - t0);
  }
}
for (const [k, v] of Object.entries(times)) {
  v.sort((a, b) => a - b);
  console.log(`${k.padEnd(42)} median ${v[3].toFixed(1)} ms`);
}
