classdef AveragePooling1DLayer < nnet.cnn.layer.Layer
  properties
    PoolSize = []
    Stride = 1
    PaddingMode = 'manual'
    PaddingSize = [0 0]
    PaddingValue = 0
  end
end
