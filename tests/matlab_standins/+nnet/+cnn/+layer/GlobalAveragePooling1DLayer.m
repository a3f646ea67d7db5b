classdef GlobalAveragePooling1DLayer < nnet.cnn.layer.Layer
end
