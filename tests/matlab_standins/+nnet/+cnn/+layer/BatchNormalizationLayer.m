classdef BatchNormalizationLayer < nnet.cnn.layer.Layer
  properties
    NumChannels = 'auto'
    TrainedMean = []
    TrainedVariance = []
    Offset = []
    Scale = []
    Epsilon = 1e-5
  end
end
