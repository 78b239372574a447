"""The `fused` engine: K runs of any Keras model trained at once, in one compiled program.

For the small models of regularization sweeps, the time of `model.fit` goes to per-step
overhead, not to arithmetic. This engine builds each run's model with its builder under its
seed (so it starts from exactly the weights the keras engine starts from), keeps one of them as
the *template*, stacks the values of all K models along a leading axis and maps one training
step over that axis with `keras.ops.vectorized_map` (`jax.vmap` on JAX, `tf.vectorized_map` on
TensorFlow). The step calls Keras's own layers and optimizer without touching their variables
(`model.stateless_call`, `optimizer.stateless_apply`), so any model a builder returns trains
here: Sequential or Functional, Dense, convolutions, Dropout, BatchNormalization, Embedding,
frozen layers. One compiled call per epoch trains every run of the pack and measures the
honest columns of all of them.

What a run keeps of its own inside a pack (nothing couples runs: each run's loss, gradient and
optimizer update are its own, and there is no clipping across the stack):
- its initial weights, BatchNorm statistics and dropout seed state: its own model's;
- its batch order: the one `model.fit` uses under its seed on this backend (measured; a test
  checks it);
- its learning rate: the value of its own optimizer's learning-rate variable;
- its L1/L2 rates, per variable, read from its model's regularizers. A regularizer's factor is
  a Python constant in a traced program, so the engine computes the penalty itself from the
  regularized weights with each run's rates (`l1 * sum|w| + l2 * sum w^2`, as Keras does);
  losses a model adds itself (other regularizers, `add_loss`) are kept as they are;
- its dropout rate, per Dropout layer, read from its model: the template's Dropout layers draw
  with the run's rate as a value, from the run's own seed state, through Keras's own dropout
  op (so the masks are those `model.fit` draws). A run whose model lacks a Dropout layer the
  template has (dropout 0 in the built-in builders) gets rate 0 there, which passes values
  through unchanged;
- early stopping (on or off, patience, min_delta), by Keras's rules (`StopRule`).

A run that stops or diverges is recorded at once, with the weights of the epoch it kept; its
slice of the stack is then ignored, and when half of the stack has ended the stack is compacted
to the runs still training (padded to a power of two, so that few program sizes compile).

A pack holds runs that share the data, the model apart from those per-run values, the batch
size, the number of epochs, the optimizer and what early stopping monitors (`pack_key`); runs
whose built models still differ in structure are trained as separate groups.
"""

from mlreg.engines.fused.introspect import why_not_model
from mlreg.engines.fused.packing import MAX_PACK, pack, pack_key, pack_sizes, stack_size
from mlreg.engines.fused.stack import NAME
from mlreg.engines.fused.stopping import StopRule
from mlreg.engines.fused.train import probe, train_pack

__all__ = ["MAX_PACK", "NAME", "StopRule", "pack", "pack_key", "pack_sizes", "probe", "stack_size",
           "train_pack", "why_not_model"]
