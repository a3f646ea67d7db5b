function layer = globalMaxPooling1dLayer(varargin)
  layer = standin_set(nnet.cnn.layer.GlobalMaxPooling1DLayer(), varargin{:});
end
