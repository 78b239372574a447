"""A zoo of models nobody here designed: builders written from the architectures of Keras's own
code examples (the keras-io repository's `examples/`, cited at each) and from the Keras API a
user reaches for, scaled to digits (8x8x1 images, 8x8 sequences, 64 integer tokens) or MNIST-1D
(`[40, 1]`), and written the way a Keras user writes them, not the way the fused engine likes.

`ZOO` says, for each, the data it takes, the grid a test sweeps (a rate of 0 and one above),
which engine trains it under `engine = "auto"` and why, and how closely the fused engine
follows `model.fit` (per epoch, over the first epochs; see tests/test_zoo.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
from keras import layers, regularizers

IMAGES = {"dataset": "digits", "train_size": 160, "val_size": 0.1, "shape": [8, 8, 1]}
SEQUENCES = {"dataset": "digits", "train_size": 160, "val_size": 0.1, "shape": [8, 8]}
TOKENS = {"dataset": "digits", "train_size": 160, "val_size": 0.1, "scale": False}  # pixel values 0..16 as tokens
TABLE = {"dataset": "digits", "train_size": 160, "val_size": 0.1}
SIGNALS = {"dataset": "mnist1d", "n_samples": 500, "train_size": 160, "val_size": 0.2, "shape": [40, 1]}


@dataclass(frozen=True)
class Entry:
    """A zoo model and how mlreg must train it.

    Attributes:
        data: the `[data]` section.
        grid: the swept parameter with a value of 0 and one above.
        engines: the engine `auto` trains it with on a backend, where that is not `fused`: the
            keras engine, with the reason said once.
        tol: per-epoch agreement of the fused engine with `model.fit` (relative and absolute),
            over the first `epochs` epochs.
        epochs: epochs the comparisons train.
        flips: samples whose predicted class may differ between the engines at an epoch (an
            accuracy column within that many samples): a near-tie in the argmax of an early, barely
            trained model turns on the last bit of a sum, while every loss still agrees within `tol`.
        marks: `backends` when the test runs again on the second backend in CI.
    """

    data: dict[str, Any]
    grid: dict[str, list[Any]]
    engines: dict[str, str] = field(default_factory=dict)
    tol: float = 1e-5
    epochs: int = 3
    flips: int = 0
    model: dict[str, Any] = field(default_factory=dict)
    marks: tuple[str, ...] = ()

    def engine(self, backend: str) -> str:
        return self.engines.get(backend, "fused")


def _reg(rate: float) -> Any:
    return regularizers.L2(rate) if rate else None


# -- from keras-io's examples ------------------------------------------------------------------------
def mnist_convnet(input_shape, n_outputs, output_activation, dropout):
    """keras-io examples/vision/mnist_convnet.py: Conv2D(32, 3) - MaxPooling2D - Conv2D(64, 3) -
    MaxPooling2D - Flatten - Dropout(0.5) - Dense softmax; filters scaled to 8 and 16."""
    return keras.Sequential([
        keras.Input(shape=input_shape),
        layers.Conv2D(8, kernel_size=(3, 3), activation="relu", padding="same"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(16, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(dropout),
        layers.Dense(n_outputs, activation=output_activation),
    ])


def timeseries_fcn(input_shape, n_outputs, output_activation, l2):
    """keras-io examples/timeseries/timeseries_classification_from_scratch.py: three blocks of
    Conv1D(64, 3, same) - BatchNormalization - ReLU, GlobalAveragePooling1D, Dense softmax;
    64 filters scaled to 8, the kernels L2-regularized."""
    input_layer = keras.layers.Input(input_shape)
    x = input_layer
    for _ in range(3):
        x = keras.layers.Conv1D(filters=8, kernel_size=3, padding="same", kernel_regularizer=_reg(l2))(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    gap = keras.layers.GlobalAveragePooling1D()(x)
    output_layer = keras.layers.Dense(n_outputs, activation=output_activation)(gap)
    return keras.models.Model(inputs=input_layer, outputs=output_layer)


def text_convnet(input_shape, n_outputs, output_activation, dropout, l2):
    """keras-io examples/nlp/text_classification_from_scratch.py: Embedding over integer tokens,
    Dropout(0.5), two Conv1D(128, 7, strides=3), GlobalMaxPooling1D, Dense(128), Dropout(0.5),
    the head; 128 scaled to 16, a vocabulary of 17 (the digits' pixel values), the embeddings
    L2-regularized (`embeddings_regularizer`)."""
    inputs = keras.Input(shape=input_shape, dtype="int64")
    x = layers.Embedding(17, 16, embeddings_regularizer=_reg(l2))(inputs)
    x = layers.Dropout(dropout)(x)
    x = layers.Conv1D(16, 7, padding="valid", activation="relu", strides=3)(x)
    x = layers.Conv1D(16, 7, padding="valid", activation="relu", strides=3)(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = layers.Dense(16, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    predictions = layers.Dense(n_outputs, activation=output_activation, name="predictions")(x)
    return keras.Model(inputs, predictions)


def small_xception(input_shape, n_outputs, output_activation, dropout):
    """keras-io examples/vision/image_classification_from_scratch.py: augmentation layers inside
    the model (RandomFlip, RandomRotation), an entry block of strided Conv2D - BatchNormalization
    - ReLU, a SeparableConv2D block with a projected residual `add`, GlobalAveragePooling2D,
    Dropout, the head; sizes [128, 256, 512, 728] scaled to one block of 16."""
    data_augmentation = keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)])
    inputs = keras.Input(shape=input_shape)
    x = data_augmentation(inputs)
    x = layers.Conv2D(8, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    previous_block_activation = x
    for size in [16]:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous_block_activation)
        x = layers.add([x, residual])
        previous_block_activation = x
    x = layers.SeparableConv2D(32, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_outputs, activation=output_activation)(x)
    return keras.Model(inputs, outputs)


def bidirectional_lstm(input_shape, n_outputs, output_activation, l2):
    """keras-io examples/nlp/bidirectional_lstm_imdb.py: two Bidirectional LSTM(64) (the first
    returning sequences), the head; 64 scaled to 8, with `recurrent_regularizer` and
    `recurrent_dropout` (the Keras API a user adds next)."""
    inputs = keras.Input(shape=input_shape)
    x = layers.Bidirectional(layers.LSTM(8, return_sequences=True, recurrent_regularizer=_reg(l2),
                                         recurrent_dropout=0.1))(inputs)
    x = layers.Bidirectional(layers.LSTM(8, recurrent_regularizer=_reg(l2)))(x)
    outputs = layers.Dense(n_outputs, activation=output_activation)(x)
    return keras.Model(inputs, outputs)


def gru(input_shape, n_outputs, output_activation, l2, dropout):
    """A GRU sequence classifier as keras.io's recurrent-layers guide writes one (GRU, then the
    head), with `recurrent_regularizer`, `recurrent_dropout` and a Dropout after it."""
    model = keras.Sequential()
    model.add(keras.Input(shape=input_shape))
    model.add(layers.GRU(16, recurrent_regularizer=_reg(l2), kernel_regularizer=_reg(l2), recurrent_dropout=0.1))
    model.add(layers.Dropout(dropout))
    model.add(layers.Dense(n_outputs, activation=output_activation))
    return model


class TransformerBlock(layers.Layer):
    """keras-io examples/nlp/text_classification_with_transformer.py's block: MultiHeadAttention,
    Dropout, LayerNormalization, a feed-forward Dense pair, Dropout, LayerNormalization. As the
    example writes it: no `get_config`."""

    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
        super().__init__()
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential([layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)])
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs, training=False):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output, training=training)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output, training=training)
        return self.layernorm2(out1 + ffn_output)


def transformer(input_shape, n_outputs, output_activation, dropout):
    """The same example's classifier on the digits' 8 rows as tokens: a Dense projection to the
    embedding, the transformer block, GlobalAveragePooling1D, Dropout, Dense, Dropout, the head."""
    inputs = layers.Input(shape=input_shape)
    x = layers.Dense(8)(inputs)
    x = TransformerBlock(8, 2, 16, rate=dropout)(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(16, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_outputs, activation=output_activation)(x)
    return keras.Model(inputs=inputs, outputs=outputs)


# -- what users write first ----------------------------------------------------------------------------
def functional_dropout(input_shape, n_outputs, output_activation, dropout, l2):
    """The first builder most Keras users write: a Functional model with `Dropout(dropout)`,
    whatever the rate (Keras makes no seed generator for a rate of 0)."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(32, activation="relu", kernel_regularizer=_reg(l2))(inputs)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(n_outputs, activation=output_activation)(x)
    return keras.Model(inputs, outputs)


def sequential_dropout_zero(input_shape, n_outputs, output_activation, l2):
    """A `keras.Sequential` MLP as keras.io's Sequential-model guide writes it, with the
    `Dropout(0.0)` a user leaves in after trying dropout out."""
    return keras.Sequential([
        keras.Input(shape=input_shape),
        layers.Dense(32, activation="relu", kernel_regularizer=regularizers.l2(l2)),
        layers.Dropout(0.0),
        layers.Dense(32, activation="relu", kernel_regularizer=regularizers.l2(l2)),
        layers.Dropout(0.0),
        layers.Dense(n_outputs, activation=output_activation),
    ])


class MLP(keras.Model):
    """A subclassed model as keras.io's subclassing guide writes one: its own `__init__` and
    `call`, no `get_config`."""

    def __init__(self, n_outputs, output_activation, dropout):
        super().__init__()
        self.dense1 = layers.Dense(32, activation="relu")
        self.dropout = layers.Dropout(dropout)
        self.dense2 = layers.Dense(n_outputs, activation=output_activation)

    def call(self, inputs, training=False):
        x = self.dense1(inputs)
        x = self.dropout(x, training=training)
        return self.dense2(x)


def subclassed(n_outputs, output_activation, dropout):
    return MLP(n_outputs, output_activation, dropout)


def noise_layers(input_shape, n_outputs, output_activation, dropout):
    """GaussianNoise on the inputs and GaussianDropout after a hidden layer (the rate swept)."""
    inputs = keras.Input(input_shape)
    x = layers.GaussianNoise(0.1)(inputs)
    x = layers.Dense(32, activation="relu")(x)
    x = layers.GaussianDropout(dropout)(x)
    return keras.Model(inputs, layers.Dense(n_outputs, activation=output_activation)(x))


def spatial_dropout_1d(input_shape, n_outputs, output_activation, dropout):
    """Conv1D feature maps dropped whole (`SpatialDropout1D`), on MNIST-1D."""
    inputs = keras.Input(input_shape)
    x = layers.Conv1D(8, 5, strides=2, activation="relu")(inputs)
    x = layers.SpatialDropout1D(dropout)(x)
    x = layers.Conv1D(8, 3, strides=2, activation="relu")(x)
    x = layers.Flatten()(x)
    return keras.Model(inputs, layers.Dense(n_outputs, activation=output_activation)(x))


def spatial_dropout_2d(input_shape, n_outputs, output_activation, dropout):
    """Conv2D feature maps dropped whole (`SpatialDropout2D`), on 8x8 digits."""
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(8, 3, activation="relu")(inputs)
    x = layers.SpatialDropout2D(dropout)(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    return keras.Model(inputs, layers.Dense(n_outputs, activation=output_activation)(x))


def selu_alpha_dropout(input_shape, n_outputs, output_activation, l2):
    """A self-normalizing MLP as Keras's docs advise: SELU, `lecun_normal`, AlphaDropout."""
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Dense(32, activation="selu", kernel_initializer="lecun_normal", kernel_regularizer=_reg(l2)),
        layers.AlphaDropout(0.1),
        layers.Dense(32, activation="selu", kernel_initializer="lecun_normal", kernel_regularizer=_reg(l2)),
        layers.AlphaDropout(0.1),
        layers.Dense(n_outputs, activation=output_activation),
    ])


def max_norm(input_shape, n_outputs, output_activation, dropout):
    """Dropout with max-norm kernels, as the dropout paper trains them (`kernel_constraint`)."""
    constraint = keras.constraints.MaxNorm(2.0)
    inputs = keras.Input(input_shape)
    x = layers.Dense(32, activation="relu", kernel_constraint=constraint)(inputs)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(32, activation="relu", kernel_constraint=constraint)(x)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, layers.Dense(n_outputs, activation=output_activation)(x))


def bias_and_activity(input_shape, n_outputs, output_activation, l2):
    """`bias_regularizer` and `activity_regularizer` beside the kernel's."""
    inputs = keras.Input(input_shape)
    x = layers.Dense(32, activation="relu", kernel_regularizer=_reg(l2), bias_regularizer=_reg(l2),
                     activity_regularizer=_reg(l2))(inputs)
    return keras.Model(inputs, layers.Dense(n_outputs, activation=output_activation, bias_regularizer=_reg(l2))(x))


def per_layer_rates(input_shape, n_outputs, output_activation, l2):
    """Rates the user derives per layer: `l2` on the first layer, `l2 / 10` on the next."""
    inputs = keras.Input(input_shape)
    x = layers.Dense(32, activation="relu", kernel_regularizer=_reg(l2))(inputs)
    x = layers.Dense(32, activation="relu", kernel_regularizer=_reg(l2 / 10))(x)
    return keras.Model(inputs, layers.Dense(n_outputs, activation=output_activation)(x))


def nested(input_shape, n_outputs, output_activation, dropout, l2):
    """A Functional model inside another: an encoder with its own Dropout, then a head."""
    encoder_input = keras.Input(input_shape)
    h = layers.Dense(32, activation="relu", kernel_regularizer=_reg(l2))(encoder_input)
    h = layers.Dropout(dropout)(h)
    encoder = keras.Model(encoder_input, layers.Dense(16, activation="relu")(h), name="encoder")
    inputs = keras.Input(input_shape)
    x = encoder(inputs)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, layers.Dense(n_outputs, activation=output_activation)(x))


def compiled(input_shape, n_outputs, output_activation, learning_rate, l2):
    """A builder written for KerasTuner: it returns the model compiled, with its own optimizer,
    loss and metrics."""
    model = keras.Sequential([keras.Input(input_shape),
                              layers.Dense(32, activation="relu", kernel_regularizer=_reg(l2)),
                              layers.Dense(n_outputs, activation=output_activation)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def with_lambda(input_shape, n_outputs, output_activation, l2):
    """A `Lambda` layer rescaling the inputs, as users write preprocessing inline."""
    inputs = keras.Input(input_shape)
    x = layers.Lambda(lambda t: t * 0.5)(inputs)
    x = layers.Dense(32, activation="relu", kernel_regularizer=_reg(l2))(x)
    return keras.Model(inputs, layers.Dense(n_outputs, activation=output_activation)(x))


def every_regularizer(input_shape, n_outputs, output_activation, l2):
    """Every regularizer Keras has a keyword for: embeddings, recurrent, kernel, bias, activity."""
    inputs = keras.Input(input_shape, dtype="int64")
    x = layers.Embedding(17, 4, embeddings_regularizer=_reg(l2))(inputs)
    x = layers.GRU(6, kernel_regularizer=_reg(l2), recurrent_regularizer=_reg(l2), bias_regularizer=_reg(l2))(x)
    x = layers.Dense(8, bias_regularizer=_reg(l2), activity_regularizer=_reg(100 * l2), name="active")(x)
    return keras.Model(inputs, layers.Dense(n_outputs, activation=output_activation, kernel_regularizer=_reg(l2))(x))


def depthwise_residual(input_shape, n_outputs, output_activation, dropout, l2):
    """A user's residual block for signals (the pattern of keras-io's depthwise-separable
    examples, written as issue 33's new user wrote it): Conv1D(16, 5) - BatchNormalization - ReLU,
    then DepthwiseConv1D(3) - BatchNormalization added back to it, ReLU, GlobalAveragePooling1D,
    Dropout, the head; L2 on the kernels."""
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv1D(16, 5, padding="same", kernel_regularizer=_reg(l2))(inputs)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    y = layers.DepthwiseConv1D(3, padding="same", depthwise_regularizer=_reg(l2))(x)
    y = layers.BatchNormalization()(y)
    x = layers.ReLU()(layers.add([x, y]))
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, layers.Dense(n_outputs, activation=output_activation, kernel_regularizer=_reg(l2))(x))


class RunningMean(layers.Layer):
    """Issue 39's layer: a running mean of its inputs, kept in a non-trainable weight it
    assigns in training (a hand-written normalization layer's pattern), subtracted from them."""

    def build(self, shape):
        self.mean = self.add_weight(shape=(shape[-1],), initializer="zeros", trainable=False, name="mean")

    def call(self, x, training=False):
        if training:
            self.mean.assign(0.9 * self.mean + 0.1 * keras.ops.mean(x, axis=0))
        return x - self.mean


class CallCounter(layers.Layer):
    """Counts its calls, in training and inference, in an integer weight, and in training scales
    its inputs by `1 + 1 / (1 + calls)` (a warm-up's pattern): a wrong count is a different model."""

    def build(self, shape):
        self.calls = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False, name="calls")

    def call(self, x, training=False):
        self.calls.assign_add(1)
        return x * (1.0 + 1.0 / (1.0 + keras.ops.cast(self.calls, x.dtype))) if training else x


class RunningMeanAlways(RunningMean):
    """`RunningMean` that also updates its mean in inference (evaluation batches move it)."""

    def call(self, x, training=False):
        self.mean.assign(0.9 * self.mean + 0.1 * keras.ops.mean(x, axis=0))
        return x - self.mean


def assigning(input_shape, n_outputs, output_activation, l2):
    """Issue 39's model: Dense(48, relu, L2) - RunningMean - CallCounter - the head."""
    inputs = keras.Input(input_shape)
    x = layers.Dense(48, activation="relu", kernel_regularizer=_reg(l2))(inputs)
    x = CallCounter()(RunningMean()(x))
    return keras.Model(inputs, layers.Dense(n_outputs, activation=output_activation)(x))


def assigning_in_inference(input_shape, n_outputs, output_activation, l2):
    """`assigning` with a mean updated in inference too: the keras engine trains it (see `probe`)."""
    inputs = keras.Input(input_shape)
    x = layers.Dense(48, activation="relu", kernel_regularizer=_reg(l2))(inputs)
    x = RunningMeanAlways()(x)
    return keras.Model(inputs, layers.Dense(n_outputs, activation=output_activation)(x))


ZOO: dict[str, Entry] = {
    "mnist_convnet": Entry(IMAGES, {"dropout": [0.0, 0.5]}, marks=("backends",)),
    "timeseries_fcn": Entry(SIGNALS, {"l2": [0.0, 1e-3]}),
    "text_convnet": Entry(TOKENS, {"dropout": [0.0, 0.5]}, model={"l2": 1e-3}, marks=("backends",)),
    "small_xception": Entry(IMAGES, {"dropout": [0.0, 0.5]}),
    "bidirectional_lstm": Entry(SEQUENCES, {"l2": [0.0, 1e-3]}, marks=("backends",),
                                engines={"tensorflow": "keras"}),  # tf.vectorized_map cannot convert LSTM's loop
    "gru": Entry(SEQUENCES, {"l2": [0.0, 1e-3]}, model={"dropout": 0.2}),
    "transformer": Entry(SEQUENCES, {"dropout": [0.0, 0.1]}),
    "functional_dropout": Entry(TABLE, {"dropout": [0.0, 0.2]}, model={"l2": 1e-4}, marks=("backends",)),
    "sequential_dropout_zero": Entry(TABLE, {"l2": [0.0, 1e-3]}),
    "subclassed": Entry(TABLE, {"dropout": [0.0, 0.3]}, marks=("backends",)),
    "noise_layers": Entry(TABLE, {"dropout": [0.0, 0.2]}),
    "spatial_dropout_1d": Entry(SIGNALS, {"dropout": [0.0, 0.2]}),
    "spatial_dropout_2d": Entry(IMAGES, {"dropout": [0.0, 0.2]}),
    "selu_alpha_dropout": Entry(TABLE, {"l2": [0.0, 1e-3]}),
    "max_norm": Entry(TABLE, {"dropout": [0.0, 0.2]}),
    "bias_and_activity": Entry(TABLE, {"l2": [0.0, 1e-3]}, marks=("backends",)),
    "per_layer_rates": Entry(TABLE, {"l2": [0.0, 1e-3]}),
    "nested": Entry(TABLE, {"dropout": [0.0, 0.2]}, model={"l2": 1e-4}),
    "compiled": Entry(TABLE, {"l2": [0.0, 1e-3]}),
    "with_lambda": Entry(TABLE, {"l2": [0.0, 1e-3]}),
    "depthwise_residual": Entry(SIGNALS, {"l2": [0.0, 1e-3]}, model={"dropout": 0.2}, flips=1, tol=1e-4,
                                marks=("backends",)),
    "assigning": Entry(TABLE, {"l2": [0.0, 1e-3]}, marks=("backends",)),
    "assigning_in_inference": Entry(TABLE, {"l2": [0.0, 1e-3]}, engines={"jax": "keras", "tensorflow": "keras"},
                                    marks=("backends",)),
}
