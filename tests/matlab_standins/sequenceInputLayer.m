function layer = sequenceInputLayer(inputSize, varargin)
  layer = standin_set(nnet.cnn.layer.SequenceInputLayer(), 'InputSize', inputSize, varargin{:});
  if ~ismember(layer.Normalization, {'none', 'zerocenter', 'zscore', 'rescale-symmetric', 'rescale-zero-one'})
    error('standin:value', 'sequenceInputLayer: invalid Normalization');
  end
end
