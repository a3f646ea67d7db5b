classdef Convolution1DLayer < nnet.cnn.layer.Layer
  properties
    FilterSize = []
    NumChannels = 'auto'
    NumFilters = []
    Stride = 1
    DilationFactor = 1
    PaddingMode = 'manual'
    PaddingSize = [0 0]
    PaddingValue = 0
    Weights = []
    Bias = []
  end
end
