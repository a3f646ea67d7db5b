function layer = sigmoidLayer(varargin)
  layer = standin_set(nnet.cnn.layer.SigmoidLayer(), varargin{:});
end
