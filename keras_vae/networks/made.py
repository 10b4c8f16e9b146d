"""A masked autoregressive network (MADE) as a Keras 3 layer, with a context input."""

import keras
import numpy as np

from keras_vae.trainable import freeze_if_not_trainable
from keras_vae.validation import check_positive_int, is_integer

__all__ = ["MADE"]


@keras.saving.register_keras_serializable(package="keras_vae")
class MADE(keras.layers.Layer):
    """Masked autoencoder for distribution estimation (Germain et al., 2015).

    Maps `z` of shape `(..., event_size)` to `params` outputs per dimension,
    `(..., event_size, params)`, where output i depends only on the inputs
    that come before i in the autoregressive order, and on `context`, which
    feeds the first hidden layer and the outputs unmasked. Masks multiply
    the kernels, so the layer is plain matmuls: it runs, exports and
    converts like `Dense`. Each unit gets a degree; a hidden unit of degree
    k sees inputs 1..k and an output of degree i sees hidden units of
    degree < i. The output layer starts at zero, so a flow built on it
    starts at the identity.

    Unlike `tfp.bijectors.AutoregressiveNetwork`, a Keras 2 layer, this one
    lives in a Keras 3 model.

    Args:
        hidden_units: Sizes of the hidden layers, each at least `event_size - 1`
            so that every input can reach the outputs after it.
        params: Outputs per dimension (2 for a shift and a log-scale).
        activation: Activation of the hidden layers.
        reverse: Whether the autoregressive order runs from the last
            dimension to the first; flows alternate it between steps.

    Call arguments:
        inputs: `z`, `(..., event_size)`.
        context: Optional `(..., context_size)` features, broadcast against `z`.
        hold_weights: Whether to stop the gradients to the weights.

    Returns:
        A tensor `(..., event_size, params)`.

    Example:

    >>> import numpy as np
    >>> made = MADE([8], params=2)
    >>> made.build((None, 3), (None, 4))
    >>> made(np.zeros((5, 3), "float32"), np.zeros((5, 4), "float32")).shape
    TensorShape([5, 3, 2])
    """

    def __init__(self, hidden_units, params=2, activation="elu", reverse=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(hidden_units, (list, tuple)):
            hidden_units = [int(units) if is_integer(units) else units for units in hidden_units]
        if (
            not isinstance(hidden_units, list)
            or not hidden_units
            or not all(is_integer(units) and units > 0 for units in hidden_units)
        ):
            raise ValueError(
                "Expected `hidden_units` to be a non-empty list of positive integers. "
                f"Received: hidden_units={hidden_units!r}"
            )
        check_positive_int("params", params)
        if not isinstance(reverse, bool):
            raise ValueError(f"Expected `reverse` to be a boolean. Received: reverse={reverse!r}")
        self.hidden_units = hidden_units
        self.params = params
        self.activation = activation
        self.reverse = reverse

    def build(self, inputs_shape, context_shape=None):
        self.event_size = int(inputs_shape[-1])
        if self.event_size > 1 and min(self.hidden_units) < self.event_size - 1:
            raise ValueError(
                f"Expected every hidden layer to have at least event_size - 1 = "
                f"{self.event_size - 1} units. Received: hidden_units={self.hidden_units}"
            )
        self.masks = _masks(self.event_size, self.hidden_units, self.params, self.reverse)
        sizes = [self.event_size, *self.hidden_units, self.event_size * self.params]
        self.kernels, self.biases = [], []
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            last = index == len(self.hidden_units)
            initializer = "zeros" if last else "glorot_uniform"
            self.kernels.append(
                self.add_weight(
                    shape=(fan_in, fan_out), initializer=initializer, name=f"kernel_{index}"
                )
            )
            self.biases.append(
                self.add_weight(shape=(fan_out,), initializer="zeros", name=f"bias_{index}")
            )
        self.context_kernels = []
        if context_shape is not None:
            # Into the first hidden layer, and into the outputs: the first dimension, which
            # sees no hidden unit, depends on the context too.
            for index, units in ((0, self.hidden_units[0]), (len(sizes) - 2, sizes[-1])):
                self.context_kernels.append(
                    self.add_weight(
                        shape=(int(context_shape[-1]), units),
                        initializer="glorot_uniform" if index == 0 else "zeros",
                        name=f"context_kernel_{index}",
                    )
                )
        freeze_if_not_trainable(self)

    def call(self, inputs, context=None, hold_weights=False):
        if (context is None) != (not self.context_kernels):
            raise ValueError(
                "Expected a `context` exactly when the layer was built with a context shape. "
                f"Received: context={'None' if context is None else tuple(context.shape)} for "
                f"a layer built {'with' if self.context_kernels else 'without'} one"
            )
        ops = keras.ops
        # Held weights: a function of the inputs alone, with no gradient to the weights.
        hold = ops.stop_gradient if hold_weights else lambda weight: weight
        outputs = inputs
        last = len(self.hidden_units)
        for index, (kernel, bias, mask) in enumerate(
            zip(self.kernels, self.biases, self.masks, strict=True)
        ):
            kernel = hold(kernel) * ops.cast(mask, self.compute_dtype)
            outputs = ops.matmul(outputs, kernel) + hold(bias)
            if context is not None and index in (0, last):
                outputs = outputs + ops.matmul(context, hold(self.context_kernels[index > 0]))
            if index < last:
                outputs = keras.activations.get(self.activation)(outputs)
        # Outputs are laid out parameter-major: (..., params * event_size).
        outputs = ops.reshape(outputs, (*ops.shape(inputs)[:-1], self.params, self.event_size))
        return ops.swapaxes(outputs, -1, -2)

    def compute_output_shape(self, inputs_shape, context_shape=None):
        return (*inputs_shape[:-1], int(inputs_shape[-1]), self.params)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_units": self.hidden_units,
            "params": self.params,
            "activation": self.activation,
            "reverse": self.reverse,
        }


def _masks(event_size, hidden_units, params, reverse):
    """The 0/1 masks of each kernel, `(fan_in, fan_out)` float32 arrays."""
    inputs = np.arange(1, event_size + 1)
    if reverse:
        inputs = inputs[::-1]
    degrees = [inputs]
    for units in hidden_units:
        # Degrees 1..event_size - 1 in turn: a unit of degree event_size would reach no output.
        degrees.append(np.arange(units) % max(1, event_size - 1) + 1)
    masks = [
        (degrees_out[None, :] >= degrees_in[:, None]).astype("float32")
        for degrees_in, degrees_out in zip(degrees[:-1], degrees[1:], strict=True)
    ]
    outputs = np.tile(inputs, params)  # parameter-major, as `call` reshapes
    masks.append((outputs[None, :] > degrees[-1][:, None]).astype("float32"))
    return masks
