classdef LSTMLayer < nnet.cnn.layer.Layer
  properties
    InputSize = 'auto'
    NumHiddenUnits = []
    OutputMode = 'sequence'
    StateActivationFunction = 'tanh'
    GateActivationFunction = 'sigmoid'
    InputWeights = []
    RecurrentWeights = []
    Bias = []
    HiddenState = []
    CellState = []
  end
end
