function layer = standin_recurrent(layer, H, varargin)
% lstmLayer/bilstmLayer/gruLayer: set and validate as MATLAB does (values and weight shapes).
  layer = standin_set(layer, 'NumHiddenUnits', H, varargin{:});
  must(ismember(layer.OutputMode, {'sequence', 'last'}), 'OutputMode', layer);
  must(ismember(layer.StateActivationFunction, {'tanh', 'softsign', 'relu'}), 'StateActivationFunction', layer);
  must(ismember(layer.GateActivationFunction, {'sigmoid', 'hard-sigmoid'}), 'GateActivationFunction', layer);
  switch class(layer)
    case 'nnet.cnn.layer.LSTMLayer', G = 4; D = 1;
    case 'nnet.cnn.layer.BiLSTMLayer', G = 8; D = 2;
    case 'nnet.cnn.layer.GRULayer', G = 3; D = 1;
      must(ismember(layer.ResetGateMode, {'after-multiplication', 'before-multiplication', ...
                                          'recurrent-bias-after-multiplication'}), 'ResetGateMode', layer);
  end
  nb = G;
  if isprop(layer, 'ResetGateMode') && strcmp(layer.ResetGateMode, 'recurrent-bias-after-multiplication')
    nb = 2 * G;
  end
  shape(layer.InputWeights, G * H, [], 'InputWeights', layer);
  shape(layer.RecurrentWeights, G * H, H, 'RecurrentWeights', layer);
  shape(layer.Bias, nb * H, 1, 'Bias', layer);
  shape(layer.HiddenState, D * H, 1, 'HiddenState', layer);
  if isprop(layer, 'CellState'), shape(layer.CellState, D * H, 1, 'CellState', layer); end
end

function must(ok, prop, layer)
  if ~ok, error('standin:value', '%s ''%s'': invalid %s', class(layer), layer.Name, prop); end
end

function shape(v, rows, cols, prop, layer)
  if isempty(v), return; end
  if ~isfloat(v) || size(v, 1) ~= rows || (~isempty(cols) && size(v, 2) ~= cols) || ndims(v) ~= 2
    error('standin:size', '%s ''%s'': %s is %s, expected %d-by-%s', class(layer), layer.Name, prop, ...
          mat2str(size(v)), rows, num2str(cols));
  end
end
