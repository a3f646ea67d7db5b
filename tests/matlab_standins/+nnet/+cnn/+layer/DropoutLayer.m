classdef DropoutLayer < nnet.cnn.layer.Layer
  properties
    Probability = 0.5
  end
end
