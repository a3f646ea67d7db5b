function layer = averagePooling1dLayer(poolSize, varargin)
  [layer, rest] = standin_padding(nnet.cnn.layer.AveragePooling1DLayer(), varargin);
  layer = standin_set(layer, 'PoolSize', poolSize, rest{:});
  if ~(isequal(layer.PaddingValue, 0) || isequal(layer.PaddingValue, 'mean'))
    error('standin:padding', 'averagePooling1dLayer ''%s'': PaddingValue must be 0 or ''mean''', layer.Name);
  end
end
