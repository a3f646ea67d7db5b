classdef WordEmbeddingLayer < nnet.cnn.layer.Layer
  properties
    Dimension = []
    NumWords = []
    Weights = []
  end
end
