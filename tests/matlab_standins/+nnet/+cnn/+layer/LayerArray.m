classdef LayerArray < nnet.cnn.layer.Layer
  % Stand-in for a heterogeneous Layer array (Octave has no matlab.mixin.Heterogeneous): numel, L(k).
  properties
    Items = {}
  end
  methods
    function obj = LayerArray(items)
      if nargin > 0, obj.Items = items; end
    end
    function n = numel(obj, varargin)
      n = numel(obj.Items);
    end
    function varargout = subsref(obj, s)
      if strcmp(s(1).type, '()')
        r = obj.Items{s(1).subs{:}};
      else
        r = builtin('subsref', obj, s(1));
      end
      if numel(s) > 1, r = subsref(r, s(2:end)); end
      varargout = {r};
    end
  end
end
