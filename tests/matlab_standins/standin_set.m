function layer = standin_set(layer, varargin)
% Name-value arguments -> properties; an unknown name is an error, as in MATLAB.
  if mod(numel(varargin), 2)
    error('standin:nv', '%s: name-value arguments must come in pairs', class(layer));
  end
  for i = 1:2:numel(varargin)
    name = varargin{i};
    if ~ischar(name) || ~isprop(layer, name)
      error('standin:nv', '%s: ''%s'' is not a name-value argument', class(layer), num2str(name));
    end
    layer.(name) = varargin{i+1};
  end
end
