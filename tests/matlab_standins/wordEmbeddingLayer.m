function layer = wordEmbeddingLayer(dimension, numWords, varargin)
  layer = standin_set(nnet.cnn.layer.WordEmbeddingLayer(), 'Dimension', dimension, 'NumWords', numWords, varargin{:});
  if ~isempty(layer.Weights) && ~isequal(size(layer.Weights), [dimension numWords])
    error('standin:size', 'wordEmbeddingLayer ''%s'': Weights must be Dimension-by-NumWords', layer.Name);
  end
end
