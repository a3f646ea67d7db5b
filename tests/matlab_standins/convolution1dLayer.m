function layer = convolution1dLayer(filterSize, numFilters, varargin)
  [layer, rest] = standin_padding(nnet.cnn.layer.Convolution1DLayer(), varargin);
  layer = standin_set(layer, 'FilterSize', filterSize, 'NumFilters', numFilters, rest{:});
  if ~isempty(layer.Weights)
    if size(layer.Weights, 1) ~= filterSize || size(layer.Weights, 3) ~= numFilters
      error('standin:size', 'convolution1dLayer ''%s'': Weights must be FilterSize-by-NumChannels-by-NumFilters', layer.Name);
    end
    layer.NumChannels = size(layer.Weights, 2);
  end
  if ~isempty(layer.Bias) && ~isequal(size(layer.Bias), [1 numFilters])
    error('standin:size', 'convolution1dLayer ''%s'': Bias must be 1-by-NumFilters', layer.Name);
  end
end
