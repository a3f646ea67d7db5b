function layer = globalAveragePooling1dLayer(varargin)
  layer = standin_set(nnet.cnn.layer.GlobalAveragePooling1DLayer(), varargin{:});
end
