classdef Layer
  % Stand-in for nnet.cnn.layer.Layer: the base class; concatenating layers gives a LayerArray.
  properties
    Name = ''
  end
  methods
    function out = vertcat(varargin)
      items = {};
      for i = 1:numel(varargin)
        a = varargin{i};
        if isa(a, 'nnet.cnn.layer.LayerArray')
          items = [items, a.Items]; %#ok<AGROW>
        elseif isa(a, 'nnet.cnn.layer.Layer')
          items{end+1} = a; %#ok<AGROW>
        elseif ~isempty(a)
          error('standin:concat', 'cannot concatenate a %s with layers', class(a));
        end
      end
      out = nnet.cnn.layer.LayerArray(items);
    end
    function out = horzcat(varargin)
      out = vertcat(varargin{:});
    end
  end
end
