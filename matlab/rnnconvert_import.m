function [layers, net] = rnnconvert_import(matfile)
%RNNCONVERT_IMPORT Build a layer array and a dlnetwork from a .mat file rnnconvert wrote.
%   [layers, net] = rnnconvert_import('model.mat') loads the variable `layers` (a cell array of
%   structs: Name, Class and the layer's properties under MATLAB's names, schemas/matlab.md) and
%   returns the layer array with every weight and state set, and dlnetwork(layers).
%   Needs Deep Learning Toolbox (R2020a or later; GRU ResetGateMode
%   'recurrent-bias-after-multiplication' needs R2023a; the 1-D convolution and pooling layers R2021b;
%   wordEmbeddingLayer Text Analytics Toolbox, whose word indices are rnnconvert's token ids + 1).  predict(net, dlarray(X, 'CTB')) then
%   computes what the source framework computed; X is channels x time x batch, i.e.
%   permute(Xpy, [3 2 1]) for rnnconvert's batch x time x features.
  info = whos('-file', matfile);
  if ~any(strcmp({info.name}, 'layers'))
    error('rnnconvert_import:layout', '%s: no variable ''layers''; write it with rnnconvert', matfile);
  end
  S = load(matfile, 'layers');
  L = S.layers;
  layers = [];
  for k = 1:numel(L)
    s = L{k};
    cls = s.Class;
    dot = find(cls == '.', 1, 'last');
    if ~isempty(dot), cls = cls(dot+1:end); end
    switch cls
      case 'SequenceInputLayer'
        args = {'Name', s.Name};
        if isfield(s, 'Normalization') && ~strcmp(s.Normalization, 'none')
          args = [args, {'Normalization', s.Normalization}];
          for f = {'Mean', 'StandardDeviation', 'Min', 'Max'}
            if isfield(s, f{1}), args = [args, {f{1}, double(s.(f{1}))}]; end %#ok<AGROW>
          end
        end
        layer = sequenceInputLayer(double(s.InputSize), args{:});
      case {'LSTMLayer', 'BiLSTMLayer'}
        args = recurrent_args(s);
        args = [args, {'CellState', single(s.CellState)}];
        if strcmp(cls, 'LSTMLayer')
          layer = lstmLayer(double(s.NumHiddenUnits), args{:});
        else
          layer = bilstmLayer(double(s.NumHiddenUnits), args{:});
        end
      case 'GRULayer'
        args = [recurrent_args(s), {'ResetGateMode', s.ResetGateMode}];
        layer = gruLayer(double(s.NumHiddenUnits), args{:});
      case 'FullyConnectedLayer'
        layer = fullyConnectedLayer(double(s.OutputSize), 'Name', s.Name, ...
                                    'Weights', single(s.Weights), 'Bias', single(s.Bias));
      case 'ReLULayer'
        layer = reluLayer('Name', s.Name);
      case 'TanhLayer'
        layer = tanhLayer('Name', s.Name);
      case 'SigmoidLayer'
        layer = sigmoidLayer('Name', s.Name);
      case 'SoftmaxLayer'
        layer = softmaxLayer('Name', s.Name);
      case 'DropoutLayer'
        layer = dropoutLayer(double(s.Probability), 'Name', s.Name);
      case 'WordEmbeddingLayer'   % Text Analytics Toolbox
        layer = wordEmbeddingLayer(double(s.Dimension), double(s.NumWords), 'Name', s.Name, ...
                                   'Weights', single(s.Weights));
      case 'Convolution1DLayer'
        layer = convolution1dLayer(double(s.FilterSize), double(s.NumFilters), 'Name', s.Name, ...
                                   'Stride', double(s.Stride), 'DilationFactor', double(s.DilationFactor), ...
                                   'Padding', padding(s), 'Weights', single(s.Weights), ...
                                   'Bias', single(reshape(s.Bias, 1, [])));
      case 'MaxPooling1DLayer'
        layer = maxPooling1dLayer(double(s.PoolSize), 'Name', s.Name, 'Stride', double(s.Stride), ...
                                  'Padding', padding(s));
      case 'AveragePooling1DLayer'
        layer = averagePooling1dLayer(double(s.PoolSize), 'Name', s.Name, 'Stride', double(s.Stride), ...
                                      'Padding', padding(s), 'PaddingValue', s.PaddingValue);
      case 'GlobalMaxPooling1DLayer'
        layer = globalMaxPooling1dLayer('Name', s.Name);
      case 'GlobalAveragePooling1DLayer'
        layer = globalAveragePooling1dLayer('Name', s.Name);
      case 'BatchNormalizationLayer'
        layer = batchNormalizationLayer('Name', s.Name, 'TrainedMean', single(s.TrainedMean(:)), ...
                                        'TrainedVariance', single(s.TrainedVariance(:)), ...
                                        'Offset', single(s.Offset(:)), 'Scale', single(s.Scale(:)), ...
                                        'Epsilon', double(s.Epsilon));
      otherwise
        error('rnnconvert_import:layer', '%s: layers{%d} ''%s'': class %s is not supported', ...
              matfile, k, s.Name, s.Class);
    end
    layers = [layers; layer]; %#ok<AGROW>
  end
  if nargout > 1
    net = dlnetwork(layers);
  end
end

function args = recurrent_args(s)
  args = {'Name', s.Name, 'OutputMode', s.OutputMode, ...
          'StateActivationFunction', s.StateActivationFunction, ...
          'GateActivationFunction', s.GateActivationFunction, ...
          'InputWeights', single(s.InputWeights), 'RecurrentWeights', single(s.RecurrentWeights), ...
          'Bias', single(s.Bias), 'HiddenState', single(s.HiddenState)};
end

function p = padding(s)
  % 'same' / 'causal', or [left right] for PaddingMode 'manual'
  if strcmp(s.PaddingMode, 'manual')
    p = double(reshape(s.PaddingSize, 1, []));
  else
    p = s.PaddingMode;
  end
end
