function layer = maxPooling1dLayer(poolSize, varargin)
  [layer, rest] = standin_padding(nnet.cnn.layer.MaxPooling1DLayer(), varargin);
  layer = standin_set(layer, 'PoolSize', poolSize, rest{:});
end
