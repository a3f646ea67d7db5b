function layer = dropoutLayer(varargin)
  p = 0.5;
  if numel(varargin) && isnumeric(varargin{1}), p = varargin{1}; varargin = varargin(2:end); end
  layer = standin_set(nnet.cnn.layer.DropoutLayer(), 'Probability', p, varargin{:});
end
