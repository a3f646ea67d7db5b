function layer = lstmLayer(numHiddenUnits, varargin)
  layer = standin_recurrent(nnet.cnn.layer.LSTMLayer(), numHiddenUnits, varargin{:});
end
