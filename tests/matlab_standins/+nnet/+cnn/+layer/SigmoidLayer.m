classdef SigmoidLayer < nnet.cnn.layer.Layer
  % Stand-in: no properties besides Name.
end
