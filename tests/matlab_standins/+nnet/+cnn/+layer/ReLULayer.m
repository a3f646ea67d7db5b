classdef ReLULayer < nnet.cnn.layer.Layer
  % Stand-in: no properties besides Name.
end
