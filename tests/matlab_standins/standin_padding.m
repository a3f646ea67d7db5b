function [layer, rest] = standin_padding(layer, args)
% The 'Padding' name-value argument of the 1-D convolution and pooling layers: 'same', 'causal' (convolution
% only) or [left right] (a scalar pads both sides) -> PaddingMode and PaddingSize, as MATLAB stores them.
  rest = {};
  for i = 1:2:numel(args)
    if ~strcmp(args{i}, 'Padding')
      rest = [rest, args(i:i+1)]; %#ok<AGROW>
      continue
    end
    p = args{i+1};
    if ischar(p)
      if ~any(strcmp(p, {'same', 'causal'})) || (strcmp(p, 'causal') && ~isprop(layer, 'DilationFactor'))
        error('standin:padding', '%s: Padding ''%s'' is not valid', class(layer), p);
      end
      layer.PaddingMode = p;
    else
      if isscalar(p), p = [p p]; end
      if ~isequal(size(p), [1 2]) || any(p < 0)
        error('standin:padding', '%s: Padding must be nonnegative [left right]', class(layer));
      end
      layer.PaddingMode = 'manual';
      layer.PaddingSize = p;
    end
  end
end
