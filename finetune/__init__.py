"""finetune: PEFT adapters (LoRA, bottleneck adapters, weighted gating) and two-stage training.

Modules
-------
tuners/      one folder per adapter method (``lora``, ``ba``, ``wg``: ``config``, ``layer``,
             ``model``) and the entry point ``apply_strategy(encoder, strategy, config)``
model.py     ``SERModel``: encoder truncated at layer k + adapters + mean pooling + head
encoder.py   running encoder layers from a given (possibly cached) hidden state
data.py      ``ClipSet`` (audio or cached states), length-sorted batches
train.py     ``fit`` (AdamW, early stopping, best-accuracy weights), ``fit_two_stage``
run.py       ``run_finetune(FinetuneConfig) -> pl.DataFrame``: one condition over its folds
results.py   results table, predictions, epoch log, Table I
checkpoint.py, predict.py, bench.py, commands.py

Kept free of imports so that loading the command-line interface stays fast.
"""
