"""Makes examples/tiny-bert: a randomly initialised tiny BertForPreTraining saved by
transformers itself (so the example is a file irconv did not write).

    pip install torch==2.13.0 transformers==4.57.6 && python examples/make_tiny_bert.py
"""
from pathlib import Path

import torch
from transformers import BertConfig, BertForPreTraining

torch.manual_seed(0)
config = BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=64, max_position_embeddings=64)
BertForPreTraining(config).save_pretrained(Path(__file__).parent / "tiny-bert")
