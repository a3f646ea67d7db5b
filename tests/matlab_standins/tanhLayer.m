function layer = tanhLayer(varargin)
  layer = standin_set(nnet.cnn.layer.TanhLayer(), varargin{:});
end
