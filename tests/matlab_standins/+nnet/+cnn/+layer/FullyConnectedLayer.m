classdef FullyConnectedLayer < nnet.cnn.layer.Layer
  properties
    InputSize = 'auto'
    OutputSize = []
    Weights = []
    Bias = []
  end
end
