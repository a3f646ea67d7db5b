function rnnconvert_export(net, matfile, version)
%RNNCONVERT_EXPORT Save a trained network in the layout rnnconvert reads (schemas/matlab.md).
%   rnnconvert_export(net, 'model.mat') writes the variable `layers`: a cell array with one struct
%   per layer (Name, Class and the layer's documented properties).  net is a SeriesNetwork, a
%   DAGNetwork whose layers form a chain, a dlnetwork, or a Layer array with learned weights.
%   rnnconvert_export(net, 'model.mat', '-v7.3') writes a v7.3 (HDF5) file instead of v7.
%   Uses documented properties only, so it keeps working when MATLAB's object storage changes.
  if nargin < 3, version = '-v7'; end
  if isa(net, 'nnet.cnn.layer.Layer')
    L = net;
  else
    L = net.Layers;
  end
  layers = cell(numel(L), 1);
  for k = 1:numel(L)
    layer = L(k);
    s = struct('Name', layer.Name, 'Class', class(layer));
    switch class(layer)
      case 'nnet.cnn.layer.SequenceInputLayer'
        s.InputSize = layer.InputSize;
        if isa(layer.Normalization, 'function_handle')
          error('rnnconvert_export:normalization', ...
                'layer ''%s'': a custom normalization function cannot be exported', layer.Name);
        end
        s.Normalization = char(layer.Normalization);
        for f = {'Mean', 'StandardDeviation', 'Min', 'Max'}
          if isprop(layer, f{1}) && ~isempty(layer.(f{1}))
            s.(f{1}) = double(layer.(f{1})(:));
          end
        end
      case {'nnet.cnn.layer.LSTMLayer', 'nnet.cnn.layer.BiLSTMLayer', 'nnet.cnn.layer.GRULayer'}
        s.NumHiddenUnits = layer.NumHiddenUnits;
        s.OutputMode = layer.OutputMode;
        s.StateActivationFunction = layer.StateActivationFunction;
        s.GateActivationFunction = layer.GateActivationFunction;
        s.InputWeights = value(layer.InputWeights, layer.Name);
        s.RecurrentWeights = value(layer.RecurrentWeights, layer.Name);
        s.Bias = value(layer.Bias, layer.Name);
        s.InputSize = input_size(layer.InputSize, s.InputWeights);
        s.HiddenState = state(layer.HiddenState, layer.NumHiddenUnits, class(layer));
        if isprop(layer, 'ResetGateMode')
          s.ResetGateMode = layer.ResetGateMode;
        else
          s.CellState = state(layer.CellState, layer.NumHiddenUnits, class(layer));
        end
      case 'nnet.cnn.layer.FullyConnectedLayer'
        s.OutputSize = layer.OutputSize;
        s.Weights = value(layer.Weights, layer.Name);
        s.Bias = value(layer.Bias, layer.Name);
        s.InputSize = input_size(layer.InputSize, s.Weights);
      case 'nnet.cnn.layer.DropoutLayer'
        s.Probability = layer.Probability;
      case 'nnet.cnn.layer.WordEmbeddingLayer'
        s.Weights = value(layer.Weights, layer.Name);
        s.Dimension = size(s.Weights, 1);
        s.NumWords = size(s.Weights, 2);
      case 'nnet.cnn.layer.Convolution1DLayer'
        s.Weights = value(layer.Weights, layer.Name);
        s.Bias = value(layer.Bias, layer.Name);
        s.FilterSize = size(s.Weights, 1);
        s.NumChannels = size(s.Weights, 2);
        s.NumFilters = size(s.Weights, 3);
        s.Stride = layer.Stride;
        s.DilationFactor = layer.DilationFactor;
        s.PaddingMode = layer.PaddingMode;
        s.PaddingSize = layer.PaddingSize;
      case {'nnet.cnn.layer.MaxPooling1DLayer', 'nnet.cnn.layer.AveragePooling1DLayer'}
        s.PoolSize = layer.PoolSize;
        s.Stride = layer.Stride;
        s.PaddingMode = layer.PaddingMode;
        s.PaddingSize = layer.PaddingSize;
        if isprop(layer, 'PaddingValue'), s.PaddingValue = layer.PaddingValue; end
      case 'nnet.cnn.layer.BatchNormalizationLayer'
        s.TrainedMean = value(layer.TrainedMean, layer.Name);
        s.TrainedVariance = value(layer.TrainedVariance, layer.Name);
        s.Scale = value(layer.Scale, layer.Name);
        s.Offset = value(layer.Offset, layer.Name);
        s.Epsilon = layer.Epsilon;
        s.NumChannels = numel(s.TrainedMean);
      otherwise
        % activation, flatten, global pooling and output layers carry no weights
    end
    layers{k} = s;
  end
  save(matfile, 'layers', version);
end

function v = value(v, name)
  if isempty(v)
    error('rnnconvert_export:untrained', ...
          'layer ''%s'' has no learned weights; train the network first', name);
  end
  if isa(v, 'dlarray'), v = extractdata(v); end
  v = gather(v);
end

function n = input_size(n, W)
  % InputSize is 'auto' in a Layer array that was never assembled into a network.
  if ischar(n) || isempty(n), n = size(W, 2); end
end

function v = state(v, H, cls)
  n = H;
  if strcmp(cls, 'nnet.cnn.layer.BiLSTMLayer'), n = 2 * H; end
  if isempty(v), v = zeros(n, 1, 'single'); end
  if isa(v, 'dlarray'), v = extractdata(v); end
  v = gather(v);
end
