classdef SequenceInputLayer < nnet.cnn.layer.Layer
  properties
    InputSize = []
    Normalization = 'none'
    Mean = []
    StandardDeviation = []
    Min = []
    Max = []
  end
end
