classdef GRULayer < nnet.cnn.layer.Layer
  properties
    InputSize = 'auto'
    NumHiddenUnits = []
    OutputMode = 'sequence'
    StateActivationFunction = 'tanh'
    GateActivationFunction = 'sigmoid'
    ResetGateMode = 'after-multiplication'
    InputWeights = []
    RecurrentWeights = []
    Bias = []
    HiddenState = []
  end
end
