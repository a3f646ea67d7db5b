"""The parts of the published TFLite schema (schema.fbs, file identifier "TFL3", version 3) that rnnconvert
writes and reads: field indices of each table, the builtin operator codes and the BuiltinOptions union
members, written out by hand from the schema.  A field's index is its position among the table's fields.
"""
from __future__ import annotations

IDENTIFIER = b"TFL3"
VERSION = 3

# Table field indices (schema.fbs).
MODEL = {"version": 0, "operator_codes": 1, "subgraphs": 2, "description": 3, "buffers": 4,
         "metadata": 6, "signature_defs": 7}
SUBGRAPH = {"tensors": 0, "inputs": 1, "outputs": 2, "operators": 3, "name": 4}
TENSOR = {"shape": 0, "type": 1, "buffer": 2, "name": 3, "quantization": 4, "is_variable": 5,
          "shape_signature": 7, "has_rank": 8}
QUANTIZATION = {"min": 0, "max": 1, "scale": 2, "zero_point": 3, "quantized_dimension": 6}
OPERATOR = {"opcode_index": 0, "inputs": 1, "outputs": 2, "builtin_options_type": 3, "builtin_options": 4,
            "custom_options": 5, "builtin_options_2_type": 11}
OPERATOR_CODE = {"deprecated_builtin_code": 0, "custom_code": 1, "version": 2, "builtin_code": 3}
BUFFER = {"data": 0, "offset": 1, "size": 2}
METADATA = {"name": 0, "buffer": 1}
SIGNATURE_DEF = {"inputs": 0, "outputs": 1, "signature_key": 2, "subgraph_index": 4}
TENSOR_MAP = {"name": 0, "tensor_index": 1}

# TensorType
FLOAT32, INT32, INT64, BOOL, INT8 = 0, 2, 4, 6, 9
DTYPES = {FLOAT32: "float32", INT32: "int32", INT64: "int64", BOOL: "bool", INT8: "int8"}

# ActivationFunctionType
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6, ACT_TANH = 0, 1, 2, 3, 4

# Padding
SAME, VALID = 0, 1

# BuiltinOperator codes.  Codes above 127 live in OperatorCode.builtin_code only; below, both fields.
OPS = {
    "ADD": 0, "AVERAGE_POOL_2D": 1, "CONCATENATION": 2, "CONV_2D": 3, "DEQUANTIZE": 6, "EMBEDDING_LOOKUP": 7,
    "FULLY_CONNECTED": 9, "PAD": 34, "LOGISTIC": 14, "MAX_POOL_2D": 17, "MUL": 18, "RELU": 19, "RELU_N1_TO_1": 20,
    "RELU6": 21, "RESHAPE": 22, "SOFTMAX": 25, "TANH": 28, "UNIDIRECTIONAL_SEQUENCE_RNN": 35, "GATHER": 36,
    "TRANSPOSE": 39, "MEAN": 40, "SUB": 41, "DIV": 42, "SQUEEZE": 43, "UNIDIRECTIONAL_SEQUENCE_LSTM": 44,
    "STRIDED_SLICE": 45, "BIDIRECTIONAL_SEQUENCE_RNN": 46, "EXP": 47, "SPLIT": 49, "LOG_SOFTMAX": 50,
    "BIDIRECTIONAL_SEQUENCE_LSTM": 52, "CAST": 53, "MAXIMUM": 55, "MINIMUM": 57, "LESS": 58, "NEG": 59,
    "SLICE": 65, "EXPAND_DIMS": 70, "LOG": 73, "SUM": 74, "SHAPE": 77, "REDUCE_PROD": 81, "REDUCE_MAX": 82, "PACK": 83,
    "UNPACK": 88, "REDUCE_ANY": 91, "FILL": 94, "NOT_EQUAL": 72, "LEAKY_RELU": 98, "ABS": 101, "REVERSE_V2": 105, "ELU": 111,
    "HARD_SWISH": 117, "WHILE": 119, "BROADCAST_TO": 130, "SELECT_V2": 123, "GELU": 150, "SPLIT_V": 102,
    "DYNAMIC_UPDATE_SLICE": 151, "FLOOR_DIV": 90,
}
OP_NAMES = {v: k for k, v in OPS.items()}
# OperatorCode.version where an op's kernels start above 1 (the op resolver matches code and version).
OP_VERSIONS = {OPS["BROADCAST_TO"]: 2}
PLACEHOLDER_FOR_GREATER_OP_CODES = 127

# BuiltinOptions union: member -> type index; each member's own field indices.
OPTIONS = {"Conv2DOptions": 1, "Pool2DOptions": 5, "FullyConnectedOptions": 8, "SoftmaxOptions": 9,
           "ConcatenationOptions": 10, "AddOptions": 11, "ReshapeOptions": 17, "MulOptions": 21,
           "GatherOptions": 23, "ReducerOptions": 27, "SubOptions": 28, "SqueezeOptions": 30,
           "SequenceRNNOptions": 31, "StridedSliceOptions": 32, "LeakyReluOptions": 75,
           "BidirectionalSequenceLSTMOptions": 69, "BidirectionalSequenceRNNOptions": 70,
           "UnidirectionalSequenceLSTMOptions": 71, "ExpandDimsOptions": 52, "ReverseV2Options": 81,
           "WhileOptions": 93, "SplitOptions": 35, "LessOptions": 41, "ShapeOptions": 55, "FillOptions": 68, "PackOptions": 59,
           "UnpackOptions": 64, "TransposeOptions": 26, "SliceOptions": 48, "MaximumMinimumOptions": 39, "GeluOptions": 116}
OPTION_NAMES = {v: k for k, v in OPTIONS.items()}
OPTION_FIELDS = {
    "Conv2DOptions": {"padding": 0, "stride_w": 1, "stride_h": 2, "fused_activation_function": 3,
                      "dilation_w_factor": 4, "dilation_h_factor": 5},
    "Pool2DOptions": {"padding": 0, "stride_w": 1, "stride_h": 2, "filter_width": 3, "filter_height": 4,
                      "fused_activation_function": 5},
    "FullyConnectedOptions": {"fused_activation_function": 0, "weights_format": 1, "keep_num_dims": 2,
                              "asymmetric_quantize_inputs": 3},
    "SoftmaxOptions": {"beta": 0},
    "ConcatenationOptions": {"axis": 0, "fused_activation_function": 1},
    "AddOptions": {"fused_activation_function": 0},
    "SubOptions": {"fused_activation_function": 0},
    "MulOptions": {"fused_activation_function": 0},
    "ReshapeOptions": {"new_shape": 0},
    "GatherOptions": {"axis": 0, "batch_dims": 1},
    "ReducerOptions": {"keep_dims": 0},
    "SqueezeOptions": {"squeeze_dims": 0},
    "SequenceRNNOptions": {"time_major": 0, "fused_activation_function": 1, "asymmetric_quantize_inputs": 2},
    "BidirectionalSequenceRNNOptions": {"time_major": 0, "fused_activation_function": 1, "merge_outputs": 2,
                                        "asymmetric_quantize_inputs": 3},
    "StridedSliceOptions": {"begin_mask": 0, "end_mask": 1, "ellipsis_mask": 2, "new_axis_mask": 3,
                            "shrink_axis_mask": 4},
    "LeakyReluOptions": {"alpha": 0},
    "UnidirectionalSequenceLSTMOptions": {"fused_activation_function": 0, "cell_clip": 1, "proj_clip": 2,
                                          "time_major": 3, "asymmetric_quantize_inputs": 4},
    "BidirectionalSequenceLSTMOptions": {"fused_activation_function": 0, "cell_clip": 1, "proj_clip": 2,
                                         "merge_outputs": 3, "time_major": 4, "asymmetric_quantize_inputs": 5},
    "WhileOptions": {"cond_subgraph_index": 0, "body_subgraph_index": 1},
    "GeluOptions": {"approximate": 0},
    "ShapeOptions": {"out_type": 0},
    "PackOptions": {"values_count": 0, "axis": 1},
    "UnpackOptions": {"num": 0, "axis": 1},
    "FillOptions": {}, "TransposeOptions": {}, "SliceOptions": {}, "LessOptions": {},
    "SplitOptions": {"num_splits": 0},
    "ExpandDimsOptions": {}, "ReverseV2Options": {}, "MaximumMinimumOptions": {},
}
