"""The encoder stage: reads, decodes and embeds what documents point at (`executor.py`).

Only `executor.py`, `model.py`, `pipeline.py` and the modules they use import torch and
transformers; `source.py` checks a model setting without them.
"""
