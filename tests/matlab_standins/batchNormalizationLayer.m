function layer = batchNormalizationLayer(varargin)
  layer = standin_set(nnet.cnn.layer.BatchNormalizationLayer(), varargin{:});
  C = numel(layer.TrainedMean);
  for f = {'TrainedMean', 'TrainedVariance', 'Offset', 'Scale'}
    if ~isempty(layer.(f{1})) && ~isequal(size(layer.(f{1})), [C 1])
      error('standin:size', 'batchNormalizationLayer ''%s'': %s must be NumChannels-by-1', layer.Name, f{1});
    end
  end
  if layer.Epsilon < 1e-5
    error('standin:epsilon', 'batchNormalizationLayer ''%s'': Epsilon must be at least 1e-5', layer.Name);
  end
  layer.NumChannels = C;
end
