function layer = fullyConnectedLayer(outputSize, varargin)
  layer = standin_set(nnet.cnn.layer.FullyConnectedLayer(), 'OutputSize', outputSize, varargin{:});
  if ~isempty(layer.Weights) && size(layer.Weights, 1) ~= outputSize
    error('standin:size', 'fullyConnectedLayer ''%s'': Weights must have OutputSize rows', layer.Name);
  end
  if ~isempty(layer.Bias) && ~isequal(size(layer.Bias), [outputSize 1])
    error('standin:size', 'fullyConnectedLayer ''%s'': Bias must be OutputSize-by-1', layer.Name);
  end
end
