"""rnnconvert's TF.js layer classes, the ES module written beside a model that names them
(`NAME.layers.mjs`): what Keras computes and @tensorflow/tfjs's own layers do not, as subclasses of
TF.js's layers registered with `tf.serialization.registerClass` (tf ops only, no other dependency).

    RnnconvertGRU                      GRU with reset_after=True (TF.js's GRUCell throws on it)
    RnnconvertLSTM                     LSTM with `projection_units` (weight `projection_kernel` [units, P])
    RnnconvertLSTM/GRU/SimpleRNN       `initial_state` (weights `initial_h`, `initial_c`: [units] or
                                       [initial_state_batch, units]), `zero_output_for_mask`
    RnnconvertGlobalAveragePooling1D   the mean over the unmasked steps only (as Keras)

The page imports it once before `tf.loadLayersModel`; it uses `globalThis.tf` (the script tag's) or
imports `@tensorflow/tfjs`.  The text is constant: the runtime imports the copy beside a model only when
it is byte for byte this one (never a stranger's JavaScript), else its own copy.
"""
from __future__ import annotations

# The layer class names the module registers, and the Keras class each extends.
CLASSES = {"RnnconvertLSTM": "LSTM", "RnnconvertGRU": "GRU", "RnnconvertSimpleRNN": "SimpleRNN",
           "RnnconvertGlobalAveragePooling1D": "GlobalAveragePooling1D"}
SUFFIX = ".layers.mjs"

SOURCE = r"""// rnnconvert's TensorFlow.js layers: recurrent and pooling layers as Keras computes them where
// @tensorflow/tfjs's own do not (a GRU with reset_after=True, an LSTM output projection, learned
// initial states, zero outputs at masked steps, a global average over unmasked steps only).
// Import this module once before tf.loadLayersModel(); it registers the classes the model names.
// It uses the page's tf (globalThis.tf, as the script tag sets it) or imports @tensorflow/tfjs.
const tf = globalThis.tf ?? await import('@tensorflow/tfjs');
const {serialization} = tf;
// TF.js's own classes, from its registry (making a layer to reach its class would use up a default name)
const registered = (name) => serialization.SerializationMap.getMap().classNameMap[name][0];

function weight(cell, name, shape) {
  return cell.addWeight(name, shape, 'float32', tf.initializers.zeros(), null, true, null);
}

function cellClass(Base, kind) {
  return class extends Base {
    constructor(args) {
      super({...args, resetAfter: false});
      this.resetAfter = kind === 'gru' && Boolean(args.resetAfter);
      this.projectionUnits = kind === 'lstm' && args.projectionUnits ? args.projectionUnits : null;
      this.initialState = Boolean(args.initialState);
      this.initialStateBatch = args.initialStateBatch ?? null;
      if (this.projectionUnits) this.stateSize = [this.projectionUnits, this.units];
    }
    build(inputShape) {
      const shape = Array.isArray(inputShape[0]) ? inputShape[0] : inputShape;
      const inputDim = shape[shape.length - 1];
      if (this.resetAfter || this.projectionUnits) {
        const gates = kind === 'gru' ? 3 : 4;
        const out = this.projectionUnits ?? this.units;
        this.kernel = weight(this, 'kernel', [inputDim, gates * this.units]);
        this.recurrentKernel = weight(this, 'recurrent_kernel', [out, gates * this.units]);
        this.bias = this.useBias ? weight(this, 'bias', this.resetAfter ? [2, 3 * this.units] : [4 * this.units]) : null;
        if (this.projectionUnits) this.projectionKernel = weight(this, 'projection_kernel', [this.units, out]);
      } else {
        super.build(inputShape);
      }
      if (this.initialState) {
        const sizes = Array.isArray(this.stateSize) ? this.stateSize : [this.stateSize];
        const lead = this.initialStateBatch == null ? [] : [this.initialStateBatch];
        this.initialStates = sizes.map((n, k) => weight(this, ['initial_h', 'initial_c'][k], [...lead, n]));
      }
      this.built = true;
    }
    call(inputs, kwargs) {
      if (this.resetAfter) return tf.tidy(() => this.resetAfterStep(inputs[0], inputs[1]));
      if (this.projectionUnits) return tf.tidy(() => this.projectedStep(inputs[0], inputs[1], inputs[2]));
      return super.call(inputs, kwargs);
    }
    resetAfterStep(x, h) {     // Keras GRU reset_after=True: r multiplies (h @ U_h + b_rec_h)
      let mx = tf.matMul(x, this.kernel.read());
      let mh = tf.matMul(h, this.recurrentKernel.read());
      if (this.useBias) {
        const [bx, bh] = tf.unstack(this.bias.read());
        mx = tf.add(mx, bx);
        mh = tf.add(mh, bh);
      }
      const [xz, xr, xh] = tf.split(mx, 3, -1);
      const [hz, hr, hh] = tf.split(mh, 3, -1);
      const z = this.recurrentActivation.apply(tf.add(xz, hz));
      const r = this.recurrentActivation.apply(tf.add(xr, hr));
      const candidate = this.activation.apply(tf.add(xh, tf.mul(r, hh)));
      const next = tf.add(tf.mul(z, h), tf.mul(tf.sub(1, z), candidate));
      return [next, next];
    }
    projectedStep(x, h, c) {   // LSTM, gates i f c o, its output projected: h = (o * act(c)) @ P
      let m = tf.add(tf.matMul(x, this.kernel.read()), tf.matMul(h, this.recurrentKernel.read()));
      if (this.useBias) m = tf.add(m, this.bias.read());
      const [zi, zf, zc, zo] = tf.split(m, 4, -1);
      const i = this.recurrentActivation.apply(zi);
      const f = this.recurrentActivation.apply(zf);
      const cNext = tf.add(tf.mul(f, c), tf.mul(i, this.activation.apply(zc)));
      const o = this.recurrentActivation.apply(zo);
      const hNext = tf.matMul(tf.mul(o, this.activation.apply(cNext)), this.projectionKernel.read());
      return [hNext, hNext, cNext];
    }
    startStates(batch) {
      return this.initialStates.map((w) => {
        const v = w.read();
        return tf.add(tf.zeros([batch, v.shape[v.shape.length - 1]]), v);
      });
    }
    extraConfig() {
      const out = {};
      if (this.resetAfter) out.resetAfter = true;
      if (this.projectionUnits) out.projectionUnits = this.projectionUnits;
      if (this.initialState) Object.assign(out, {initialState: true, initialStateBatch: this.initialStateBatch});
      return out;
    }
  };
}

function recurrentClass(base, kind, className) {
  const Cell = cellClass(registered(base + 'Cell'), kind);
  const Layer = class extends registered(base) {
    constructor(args) {
      super({...args, resetAfter: false});
      this.cell = new Cell(args);
      this.zeroOutputForMask = Boolean(args.zeroOutputForMask);
    }
    getInitialState(inputs) {
      if (!this.cell.initialState) return super.getInitialState(inputs);
      return tf.tidy(() => this.cell.startStates(inputs.shape[0]));
    }
    call(inputs, kwargs) {
      const y = super.call(inputs, kwargs);
      const mask = kwargs == null ? null : kwargs.mask;
      if (!this.zeroOutputForMask || !this.returnSequences || mask == null) return y;
      return tf.tidy(() => {     // Keras's zero_output_for_mask: masked steps output zeros
        let m = tf.cast(Array.isArray(mask) ? mask[0] : mask, y.dtype);
        if (this.goBackwards) m = tf.reverse(m, 1);       // y is in processing order
        return tf.mul(y, tf.expandDims(m, -1));
      });
    }
    getConfig() {
      return {...super.getConfig(), ...this.cell.extraConfig(), zeroOutputForMask: this.zeroOutputForMask};
    }
  };
  Layer.className = className;
  serialization.registerClass(Layer);
}

recurrentClass('LSTM', 'lstm', 'RnnconvertLSTM');
recurrentClass('GRU', 'gru', 'RnnconvertGRU');
recurrentClass('SimpleRNN', 'rnn', 'RnnconvertSimpleRNN');

class RnnconvertGlobalAveragePooling1D extends registered('GlobalAveragePooling1D') {
  constructor(args) {
    super(args);
    this.supportsMasking = true;
  }
  computeMask() {
    return null;
  }
  call(inputs, kwargs) {     // Keras: the mean over the unmasked steps only
    const mask = kwargs == null ? null : kwargs.mask;
    if (mask == null) return super.call(inputs, kwargs);
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const m = tf.expandDims(tf.cast(Array.isArray(mask) ? mask[0] : mask, x.dtype), -1);
      return tf.div(tf.sum(tf.mul(x, m), 1), tf.sum(m, 1));
    });
  }
}
RnnconvertGlobalAveragePooling1D.className = 'RnnconvertGlobalAveragePooling1D';
serialization.registerClass(RnnconvertGlobalAveragePooling1D);
"""
