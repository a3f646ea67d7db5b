"""rnnconvert's TF.js layer classes, the ES module written beside a model that names them
(`NAME.layers.mjs`): what Keras computes and @tensorflow/tfjs's own layers do not, as subclasses of
TF.js's layers registered with `tf.serialization.registerClass` (tf ops only, no other dependency).

    RnnconvertGRU                      GRU with reset_after=True (TF.js's GRUCell throws on it)
    RnnconvertLSTM                     LSTM with `projection_units` (weight `projection_kernel` [units, P]),
                                       `peepholes` (weight `peephole_weights` [3, units], rows i, f, o)
    RnnconvertLSTM/GRU/SimpleRNN       `cell_clip` (ONNX's clip: each activation's input), `cell_activations`
                                       (by role: gates, candidate, LSTM output; {name, alpha, beta} as the
                                       canonical model's) where TF.js names none that computes one
    RnnconvertLSTM/GRU/SimpleRNN       `initial_state` (weights `initial_h`, `initial_c`: [units] or
                                       [initial_state_batch, units]), `zero_output_for_mask`
    RnnconvertGlobalAveragePooling1D   the mean over the unmasked steps only (as Keras)
    RnnconvertTimeWindow               x[:, start:stop] or one step x[:, start] (`single`), as Python indexes
                                       (negative from the end, bounds clamped; TF.js has no Cropping1D)

The page imports it once before `tf.loadLayersModel`; it uses `globalThis.tf` (the script tag's) or
imports `@tensorflow/tfjs`.  The text is constant: the runtime imports the copy beside a model only when
it is byte for byte this one (never a stranger's JavaScript), else its own copy.
"""
from __future__ import annotations

# The layer class names the module registers, and the Keras class each extends.
CLASSES = {"RnnconvertLSTM": "LSTM", "RnnconvertGRU": "GRU", "RnnconvertSimpleRNN": "SimpleRNN",
           "RnnconvertGlobalAveragePooling1D": "GlobalAveragePooling1D"}
# The class of the canonical TimeWindow, which extends no Keras class (config: start, stop, single).
WINDOW = "RnnconvertTimeWindow"
SUFFIX = ".layers.mjs"

SOURCE = r"""// rnnconvert's TensorFlow.js layers: recurrent and pooling layers as Keras (and ONNX) compute them
// where @tensorflow/tfjs's own do not (a GRU with reset_after=True, an LSTM output projection or
// peepholes, a cell clip, learned initial states, zero outputs at masked steps, a global average over
// the unmasked steps only), and a time window of a sequence (TF.js has no Cropping1D).
// Import this module once before tf.loadLayersModel(); it registers the classes the model names.
// It uses the page's tf (globalThis.tf, as the script tag sets it) or imports @tensorflow/tfjs.
const tf = globalThis.tf ?? await import('@tensorflow/tfjs');
const {serialization} = tf;
// TF.js's own classes, from its registry (making a layer to reach its class would use up a default name)
const registered = (name) => serialization.SerializationMap.getMap().classNameMap[name][0];

function weight(cell, name, shape) {
  return cell.addWeight(name, shape, 'float32', tf.initializers.zeros(), null, true, null);
}

// The canonical activations (rnnconvert's reference pass), {name, alpha, beta} as the config holds them.
function activation({name, alpha, beta}) {
  const elu = (x, a) => tf.where(tf.greater(x, 0), x, tf.mul(a, tf.sub(tf.exp(x), 1)));
  const fns = {
    linear: (x) => x, sigmoid: (x) => tf.sigmoid(x), tanh: (x) => tf.tanh(x), relu: (x) => tf.relu(x),
    softsign: (x) => tf.div(x, tf.add(1, tf.abs(x))), softplus: (x) => tf.softplus(x), exponential: (x) => tf.exp(x),
    swish: (x) => tf.mul(x, tf.sigmoid(x)), relu6: (x) => tf.clipByValue(x, 0, 6),
    gelu: (x) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))),
    hard_sigmoid: (x) => tf.clipByValue(tf.add(tf.mul(x, alpha), beta), 0, 1),
    elu: (x) => elu(x, alpha), selu: (x) => tf.mul(beta, elu(x, alpha)),
    leaky_relu: (x) => tf.where(tf.greaterEqual(x, 0), x, tf.mul(x, alpha)),
    thresholded_relu: (x) => tf.where(tf.greater(x, alpha), x, tf.zerosLike(x)),
    affine: (x) => tf.add(tf.mul(x, alpha), beta), scaled_tanh: (x) => tf.mul(alpha, tf.tanh(tf.mul(x, beta))),
  };
  if (!(name in fns)) throw new Error(`rnnconvert's TF.js layers: unknown cell activation '${name}'`);
  return fns[name];
}

function cellClass(Base, kind) {
  const GATES = {lstm: 4, gru: 3, rnn: 1}[kind];
  return class extends Base {
    constructor(args) {
      super({...args, resetAfter: false});
      this.resetAfter = kind === 'gru' && Boolean(args.resetAfter);
      this.projectionUnits = kind === 'lstm' && args.projectionUnits ? args.projectionUnits : null;
      this.peepholes = kind === 'lstm' && Boolean(args.peepholes);
      this.cellClip = args.cellClip ?? null;
      // exact activations by role (gates, candidate, output), where TF.js names none that computes them
      this.cellActivations = args.cellActivations ?? null;
      this.roles = this.cellActivations ? this.cellActivations.map(activation) : null;
      this.initialState = Boolean(args.initialState);
      this.initialStateBatch = args.initialStateBatch ?? null;
      if (this.projectionUnits) this.stateSize = [this.projectionUnits, this.units];
      // TF.js's own step computes the rest; these need rnnconvert's
      this.ownStep = this.resetAfter || this.projectionUnits != null || this.peepholes || this.cellClip != null ||
        this.roles != null;
    }
    build(inputShape) {
      const shape = Array.isArray(inputShape[0]) ? inputShape[0] : inputShape;
      const inputDim = shape[shape.length - 1];
      if (this.ownStep) {
        const out = this.projectionUnits ?? this.units;
        this.kernel = weight(this, 'kernel', [inputDim, GATES * this.units]);
        this.recurrentKernel = weight(this, 'recurrent_kernel', [out, GATES * this.units]);
        this.bias = this.useBias ? weight(this, 'bias', this.resetAfter ? [2, 3 * this.units] : [GATES * this.units]) : null;
        if (this.projectionUnits) this.projectionKernel = weight(this, 'projection_kernel', [this.units, out]);
        if (this.peepholes) this.peepholeWeights = weight(this, 'peephole_weights', [3, this.units]);
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
      if (!this.ownStep) return super.call(inputs, kwargs);
      return tf.tidy(() => {
        const [x, h, c] = inputs;
        return kind === 'lstm' ? this.lstmStep(x, h, c) : kind === 'gru' ? this.gruStep(x, h) : this.rnnStep(x, h);
      });
    }
    act(role, z) {             // role 0: the gates (SimpleRNN: its one activation), 1: candidate, 2: LSTM output
      if (this.roles) return this.roles[role](z);
      return (role === 0 && kind !== 'rnn' ? this.recurrentActivation : this.activation).apply(z);
    }
    clip(z) {                  // ONNX's cell clip: every activation's input bounded to [-clip, clip]
      return this.cellClip == null ? z : tf.clipByValue(z, -this.cellClip, this.cellClip);
    }
    lstmStep(x, h, c) {        // Keras's gates i f c o; peepholes (rows i f o): i, f see c(t-1), o sees c(t)
      let m = tf.add(tf.matMul(x, this.kernel.read()), tf.matMul(h, this.recurrentKernel.read()));
      if (this.useBias) m = tf.add(m, this.bias.read());
      let [zi, zf, zc, zo] = tf.split(m, 4, -1);
      const peep = this.peepholes ? tf.unstack(this.peepholeWeights.read()) : null;
      if (peep) {
        zi = tf.add(zi, tf.mul(peep[0], c));
        zf = tf.add(zf, tf.mul(peep[1], c));
      }
      const i = this.act(0, this.clip(zi));
      const f = this.act(0, this.clip(zf));
      const cNext = tf.add(tf.mul(f, c), tf.mul(i, this.act(1, this.clip(zc))));
      if (peep) zo = tf.add(zo, tf.mul(peep[2], cNext));
      const o = this.act(0, this.clip(zo));
      let hNext = tf.mul(o, this.act(2, cNext));
      if (this.projectionUnits) hNext = tf.matMul(hNext, this.projectionKernel.read());
      return [hNext, hNext, cNext];
    }
    gruStep(x, h) {            // Keras's gates z r h; reset_after: r multiplies (h @ U_h + recurrent bias)
      const units = this.units;
      let mx = tf.matMul(x, this.kernel.read());
      const bias = this.useBias ? this.bias.read() : null;
      let candidate;
      let z;
      if (this.resetAfter) {
        let mh = tf.matMul(h, this.recurrentKernel.read());
        if (bias) {
          const [bx, bh] = tf.unstack(bias);
          mx = tf.add(mx, bx);
          mh = tf.add(mh, bh);
        }
        const [xz, xr, xh] = tf.split(mx, 3, -1);
        const [hz, hr, hh] = tf.split(mh, 3, -1);
        z = this.act(0, this.clip(tf.add(xz, hz)));
        const r = this.act(0, this.clip(tf.add(xr, hr)));
        candidate = this.act(1, this.clip(tf.add(xh, tf.mul(r, hh))));
      } else {
        if (bias) mx = tf.add(mx, bias);
        const [uzr, uh] = tf.split(this.recurrentKernel.read(), [2 * units, units], -1);
        const [xz, xr, xh] = tf.split(mx, 3, -1);
        const [hz, hr] = tf.split(tf.matMul(h, uzr), 2, -1);
        z = this.act(0, this.clip(tf.add(xz, hz)));
        const r = this.act(0, this.clip(tf.add(xr, hr)));
        candidate = this.act(1, this.clip(tf.add(xh, tf.matMul(tf.mul(r, h), uh))));
      }
      const next = tf.add(tf.mul(z, h), tf.mul(tf.sub(1, z), candidate));
      return [next, next];
    }
    rnnStep(x, h) {
      let m = tf.add(tf.matMul(x, this.kernel.read()), tf.matMul(h, this.recurrentKernel.read()));
      if (this.useBias) m = tf.add(m, this.bias.read());
      const next = this.act(0, this.clip(m));
      return [next, next];
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
      if (this.peepholes) out.peepholes = true;
      if (this.cellClip != null) out.cellClip = this.cellClip;
      if (this.cellActivations) out.cellActivations = this.cellActivations;
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

// x[:, start:stop] (or one step x[:, start] with single), as Python indexes: negative from the end, bounds past
// an end clamped; a window that keeps no step of the input throws.  The mask stops here (as Keras's Cropping1D).
class RnnconvertTimeWindow extends tf.layers.Layer {
  constructor(args) {
    super(args);
    this.start = args.start;
    this.stop = args.stop ?? null;
    this.single = Boolean(args.single);
    this.supportsMasking = true;
  }
  steps(T) {                 // [first, end) of the steps kept from T
    if (this.single) {
      const k = this.start < 0 ? this.start + T : this.start;
      return 0 <= k && k < T ? [k, k + 1] : [0, 0];
    }
    const at = (v) => (v < 0 ? Math.max(v + T, 0) : Math.min(v, T));
    const a = at(this.start);
    return [a, Math.max(a, this.stop == null ? T : at(this.stop))];
  }
  computeOutputShape(inputShape) {
    const T = inputShape[1];
    if (this.single) return [inputShape[0], inputShape[2]];
    if (T == null) return [inputShape[0], null, inputShape[2]];
    const [a, b] = this.steps(T);
    return [inputShape[0], b - a, inputShape[2]];
  }
  computeMask() {
    return null;
  }
  call(inputs) {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const [a, b] = this.steps(x.shape[1]);
      if (b <= a) {
        const what = this.single ? `step ${this.start}` : `steps ${this.start}:${this.stop ?? ''}`;
        throw new Error(`layer '${this.name}': the time window keeps ${what} of ${x.shape[1]} time steps: none`);
      }
      const y = tf.slice(x, [0, a, 0], [-1, b - a, -1]);
      return this.single ? tf.squeeze(y, [1]) : y;
    });
  }
  getConfig() {
    return {...super.getConfig(), start: this.start, stop: this.stop, single: this.single};
  }
}
RnnconvertTimeWindow.className = 'RnnconvertTimeWindow';
serialization.registerClass(RnnconvertTimeWindow);
"""
