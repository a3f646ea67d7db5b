function layer = softmaxLayer(varargin)
  layer = standin_set(nnet.cnn.layer.SoftmaxLayer(), varargin{:});
end
