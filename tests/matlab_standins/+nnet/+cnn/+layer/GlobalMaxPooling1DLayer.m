classdef GlobalMaxPooling1DLayer < nnet.cnn.layer.Layer
end
