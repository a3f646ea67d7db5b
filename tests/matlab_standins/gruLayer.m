function layer = gruLayer(numHiddenUnits, varargin)
  layer = standin_recurrent(nnet.cnn.layer.GRULayer(), numHiddenUnits, varargin{:});
end
