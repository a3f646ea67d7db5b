classdef dlnetwork
  % Stand-in: checks that layers form an initializable chain (sizes agree) and sets each layer's
  % InputSize as MATLAB's initialization does.  Layers is a Layer array.
  properties
    Layers
  end
  methods
    function net = dlnetwork(layers)
      items = {};
      C = [];
      for k = 1:numel(layers)
        l = layers(k);
        switch class(l)
          case 'nnet.cnn.layer.SequenceInputLayer'
            if k ~= 1, error('standin:chain', 'the input layer must come first'); end
            C = l.InputSize;
          case {'nnet.cnn.layer.LSTMLayer', 'nnet.cnn.layer.BiLSTMLayer', 'nnet.cnn.layer.GRULayer'}
            if isempty(l.InputWeights) || isempty(l.RecurrentWeights) || isempty(l.Bias)
              error('standin:init', 'layer ''%s'' has no weights', l.Name);
            end
            if size(l.InputWeights, 2) ~= C
              error('standin:size', 'layer ''%s'': InputWeights has %d columns, input has %d channels', ...
                    l.Name, size(l.InputWeights, 2), C);
            end
            l.InputSize = C;
            C = l.NumHiddenUnits * (1 + strcmp(class(l), 'nnet.cnn.layer.BiLSTMLayer'));
          case 'nnet.cnn.layer.WordEmbeddingLayer'
            if C ~= 1, error('standin:size', 'layer ''%s'' takes one word index per step', l.Name); end
            C = l.Dimension;
          case 'nnet.cnn.layer.Convolution1DLayer'
            if size(l.Weights, 2) ~= C
              error('standin:size', 'layer ''%s'': Weights has %d channels, input has %d', l.Name, size(l.Weights, 2), C);
            end
            C = l.NumFilters;
          case 'nnet.cnn.layer.BatchNormalizationLayer'
            if numel(l.TrainedMean) ~= C
              error('standin:size', 'layer ''%s'': %d statistics, input has %d channels', l.Name, numel(l.TrainedMean), C);
            end
          case 'nnet.cnn.layer.FullyConnectedLayer'
            if size(l.Weights, 2) ~= C
              error('standin:size', 'layer ''%s'': Weights has %d columns, input has %d channels', ...
                    l.Name, size(l.Weights, 2), C);
            end
            l.InputSize = C;
            C = l.OutputSize;
        end
        items{end+1} = l; %#ok<AGROW>
      end
      net.Layers = nnet.cnn.layer.LayerArray(items);
    end
  end
end
