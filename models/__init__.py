"""Model families (GPT, char-LSTM), size ladders, accounting, data, tasks and checkpoints."""

from scaletrack.models.accounting import ParamCount, count_params, flops_per_token
from scaletrack.models.build import FAMILIES, build_model, make_config
from scaletrack.models.gpt import GPT, GPTConfig
from scaletrack.models.lstm import CharLSTM, LSTMConfig

__all__ = [
    "FAMILIES",
    "GPT",
    "CharLSTM",
    "GPTConfig",
    "LSTMConfig",
    "ParamCount",
    "build_model",
    "count_params",
    "flops_per_token",
    "make_config",
]
