function layer = reluLayer(varargin)
  layer = standin_set(nnet.cnn.layer.ReLULayer(), varargin{:});
end
