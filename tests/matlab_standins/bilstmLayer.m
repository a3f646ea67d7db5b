function layer = bilstmLayer(numHiddenUnits, varargin)
  layer = standin_recurrent(nnet.cnn.layer.BiLSTMLayer(), numHiddenUnits, varargin{:});
end
