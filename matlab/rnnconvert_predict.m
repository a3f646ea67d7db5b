function [Y, sequence] = rnnconvert_predict(layers, X)
%RNNCONVERT_PREDICT Forward pass of an rnnconvert layer cell (schemas/matlab.md) on X.
%   Y = rnnconvert_predict(layers, X) runs MATLAB's documented layer equations, one observation
%   at a time, over the time loop.  layers is the cell of structs (Name, Class, properties) that
%   rnnconvert writes or rnnconvert_export.m saves; X is batch x time x channels (rnnconvert's
%   layout).  MATLAB itself takes each observation as channels x time: x = squeeze(X(b,:,:)).'.
%   Y is batch x time x outputs for a sequence output (sequence = true; MATLAB drops a trailing
%   singleton dimension), batch x outputs otherwise.
%   Runs in MATLAB and Octave; needs no toolbox.  Equations (gates as in the MATLAB docs):
%     LSTM  [i;f;g;o] = W*x_t + R*h + b; i,f,o = gate(.), g = state(.)
%           c = f.*c + i.*g; h = o.*state(c)
%     GRU   [r;z;h~] rows of W, R, b; r,z = gate(W_rz*x_t + R_rz*h + b_rz)
%           after-multiplication:               h~ = state(W_h*x_t + b_h + r.*(R_h*h))
%           recurrent-bias-after-multiplication: h~ = state(W_h*x_t + b_Wh + r.*(R_h*h + b_Rh))
%           before-multiplication:              h~ = state(W_h*x_t + b_h + R_h*(r.*h))
%           h = (1 - z).*h~ + z.*h
%     BiLSTM forward rows 1:4H, backward rows 4H+1:8H run from the last step; outputs [h_f; h_b]
%           per step; OutputMode 'last' takes step T of that sequence (h_b after one step).
%     wordEmbeddingLayer  y_t = Weights(:, x_t), x_t a word index in 1..NumWords
%     convolution1dLayer  y_t = Bias + sum_k Weights(k,:,:)' * xp(:, (t-1)*Stride + (k-1)*DilationFactor + 1),
%           xp = x padded with zeros in time: 'causal' (FilterSize-1)*DilationFactor on the left; 'same'
%           total = max((ceil(T/Stride)-1)*Stride + span - T, 0), floor(total/2) left, the rest right;
%           'manual' PaddingSize [left right].  Pooling windows likewise (PoolSize, Stride); max and
%           average over a window, average with PaddingValue 'mean' over its real steps only, with 0
%           over PoolSize steps.  Global pooling: max / mean over time (one step out).
%     batchNormalizationLayer  y = (x - TrainedMean) ./ sqrt(TrainedVariance + Epsilon) .* Scale + Offset
  nb = size(X, 1);
  Y = [];
  sequence = is_sequence(layers);
  for b = 1:nb
    x = reshape(X(b, :, :), size(X, 2), size(X, 3)).';   % channels x time
    for k = 1:numel(layers)
      x = apply_layer(layers{k}, x);
    end
    if b == 1
      if sequence
        Y = zeros(nb, size(x, 2), size(x, 1));
      else
        Y = zeros(nb, size(x, 1));
      end
    end
    if sequence
      Y(b, :, :) = reshape(x.', [1, size(x, 2), size(x, 1)]);
    else
      Y(b, :) = x(:, end).';
    end
  end
end

function s = is_sequence(layers)
  s = true;
  for k = 1:numel(layers)
    L = layers{k};
    if isfield(L, 'OutputMode') && strcmp(L.OutputMode, 'last')
      s = false;
    end
    if ~isempty(regexp(L.Class, 'Global(Max|Average)Pooling1DLayer$', 'once'))
      s = false;
    end
  end
end

function x = apply_layer(L, x)
  cls = L.Class;
  dot = find(cls == '.', 1, 'last');
  if ~isempty(dot)
    cls = cls(dot+1:end);
  end
  switch cls
    case 'SequenceInputLayer'
      x = normalize_input(L, x);
    case 'LSTMLayer'
      x = lstm(L, double(L.InputWeights), double(L.RecurrentWeights), double(L.Bias(:)), ...
               double(L.HiddenState(:)), double(L.CellState(:)), x, false);
      x = pick(L, x);
    case 'BiLSTMLayer'
      H = double(L.NumHiddenUnits); n = 4*H;
      W = double(L.InputWeights); R = double(L.RecurrentWeights); bias = double(L.Bias(:));
      h0 = double(L.HiddenState(:)); c0 = double(L.CellState(:));
      yf = lstm(L, W(1:n, :), R(1:n, :), bias(1:n), h0(1:H), c0(1:H), x, false);
      yb = lstm(L, W(n+1:end, :), R(n+1:end, :), bias(n+1:end), h0(H+1:end), c0(H+1:end), x, true);
      x = pick(L, [yf; yb]);
    case 'GRULayer'
      x = pick(L, gru(L, x));
    case 'FullyConnectedLayer'
      x = double(L.Weights) * x + double(L.Bias(:));
    case 'ReLULayer'
      x = max(x, 0);
    case 'TanhLayer'
      x = tanh(x);
    case 'SigmoidLayer'
      x = 1 ./ (1 + exp(-x));
    case 'SoftmaxLayer'
      e = exp(x - max(x, [], 1));
      x = e ./ sum(e, 1);
    case {'DropoutLayer', 'FlattenLayer'}
      % identity at prediction time
    case 'WordEmbeddingLayer'
      W = double(L.Weights);
      if any(x(:) < 1 | x(:) > size(W, 2) | x(:) ~= round(x(:)))
        error('rnnconvert_predict:index', 'layer %s: word indices must be integers in 1..%d', L.Name, size(W, 2));
      end
      x = W(:, x(1, :));
    case 'Convolution1DLayer'
      x = conv1d(L, x);
    case {'MaxPooling1DLayer', 'AveragePooling1DLayer'}
      x = pool1d(L, x, strcmp(cls, 'MaxPooling1DLayer'));
    case 'GlobalMaxPooling1DLayer'
      x = max(x, [], 2);
    case 'GlobalAveragePooling1DLayer'
      x = mean(x, 2);
    case 'BatchNormalizationLayer'
      x = (x - double(L.TrainedMean(:))) ./ sqrt(double(L.TrainedVariance(:)) + double(L.Epsilon)) ...
          .* double(L.Scale(:)) + double(L.Offset(:));
    otherwise
      if isempty(regexp(cls, 'OutputLayer$', 'once'))
        error('rnnconvert_predict:layer', 'layer class %s is not implemented', L.Class);
      end
  end
end

function x = normalize_input(L, x)
  if ~isfield(L, 'Normalization'), return; end
  switch L.Normalization
    case 'none'
    case 'zerocenter'
      x = x - double(L.Mean(:));
    case 'zscore'
      x = (x - double(L.Mean(:))) ./ double(L.StandardDeviation(:));
    case 'rescale-symmetric'
      x = -1 + 2 * (x - double(L.Min(:))) ./ (double(L.Max(:)) - double(L.Min(:)));
    case 'rescale-zero-one'
      x = (x - double(L.Min(:))) ./ (double(L.Max(:)) - double(L.Min(:)));
    otherwise
      error('rnnconvert_predict:normalization', 'Normalization %s is not implemented', L.Normalization);
  end
end

function y = pick(L, y)
  if strcmp(L.OutputMode, 'last')
    y = y(:, end);
  end
end

function y = act(name, x)
  switch name
    case 'sigmoid'
      y = 1 ./ (1 + exp(-x));
    case 'hard-sigmoid'
      y = min(max(0.2 * x + 0.5, 0), 1);
    case 'tanh'
      y = tanh(x);
    case 'softsign'
      y = x ./ (1 + abs(x));
    case 'relu'
      y = max(x, 0);
    otherwise
      error('rnnconvert_predict:activation', 'activation %s is not implemented', name);
  end
end

function y = lstm(L, W, R, b, h, c, x, backward)
  H = size(R, 2); T = size(x, 2);
  y = zeros(H, T);
  steps = 1:T;
  if backward, steps = T:-1:1; end
  for t = steps
    z = W * x(:, t) + R * h + b;
    i = act(L.GateActivationFunction, z(1:H));
    f = act(L.GateActivationFunction, z(H+1:2*H));
    g = act(L.StateActivationFunction, z(2*H+1:3*H));
    o = act(L.GateActivationFunction, z(3*H+1:4*H));
    c = f .* c + i .* g;
    h = o .* act(L.StateActivationFunction, c);
    y(:, t) = h;
  end
end

function y = gru(L, x)
  W = double(L.InputWeights); R = double(L.RecurrentWeights); bias = double(L.Bias(:));
  H = size(R, 2); T = size(x, 2);
  h = double(L.HiddenState(:));
  mode = L.ResetGateMode;
  bW = bias(1:3*H);
  bR = zeros(3*H, 1);
  if strcmp(mode, 'recurrent-bias-after-multiplication')
    bR = bias(3*H+1:6*H);
  end
  rz = 1:2*H; hh = 2*H+1:3*H;
  y = zeros(H, T);
  for t = 1:T
    g = act(L.GateActivationFunction, W(rz, :) * x(:, t) + bW(rz) + R(rz, :) * h + bR(rz));
    r = g(1:H); z = g(H+1:2*H);
    switch mode
      case 'before-multiplication'
        n = act(L.StateActivationFunction, W(hh, :) * x(:, t) + bW(hh) + R(hh, :) * (r .* h));
      otherwise
        n = act(L.StateActivationFunction, W(hh, :) * x(:, t) + bW(hh) + r .* (R(hh, :) * h + bR(hh)));
    end
    h = (1 - z) .* n + z .* h;
    y(:, t) = h;
  end
end

function [left, right] = padding(L, T, span, stride)
  switch L.PaddingMode
    case 'same'
      total = max((ceil(T / stride) - 1) * stride + span - T, 0);
      left = floor(total / 2); right = total - left;
    case 'causal'
      left = span - 1; right = 0;
    otherwise
      left = double(L.PaddingSize(1)); right = double(L.PaddingSize(2));
  end
end

function y = conv1d(L, x)
  Wt = double(L.Weights);
  w = double(L.FilterSize); C = double(L.NumChannels); F = double(L.NumFilters);
  s = double(L.Stride); d = double(L.DilationFactor);
  T = size(x, 2); span = (w - 1) * d + 1;
  [left, right] = padding(L, T, span, s);
  xp = [zeros(C, left), x, zeros(C, right)];
  n = floor((size(xp, 2) - span) / s) + 1;
  if n < 1
    error('rnnconvert_predict:length', 'layer %s: %d steps are too few for the filter', L.Name, T);
  end
  y = repmat(double(L.Bias(:)), 1, n);
  for k = 1:w
    Wk = reshape(Wt(k, :, :), C, F);
    y = y + Wk.' * xp(:, (0:n-1) * s + (k - 1) * d + 1);
  end
end

function y = pool1d(L, x, is_max)
  p = double(L.PoolSize); s = double(L.Stride);
  T = size(x, 2);
  [left, right] = padding(L, T, p, s);
  n = floor((T + left + right - p) / s) + 1;
  if n < 1
    error('rnnconvert_predict:length', 'layer %s: %d steps are too few for the pool', L.Name, T);
  end
  y = zeros(size(x, 1), n);
  mean_pad = isfield(L, 'PaddingValue') && ischar(L.PaddingValue) && strcmp(L.PaddingValue, 'mean');
  for t = 1:n
    lo = (t - 1) * s - left + 1; hi = lo + p - 1;
    win = x(:, max(lo, 1):min(hi, T));
    if is_max
      y(:, t) = max(win, [], 2);
    elseif mean_pad
      y(:, t) = mean(win, 2);
    else
      y(:, t) = sum(win, 2) / p;
    end
  end
end
