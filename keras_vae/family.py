"""The base class of posterior and likelihood families."""

import math

import keras

from keras_vae.trainable import freeze_if_not_trainable

__all__ = ["Family"]


class Family(keras.layers.Layer):
    """A distribution family that owns its projection from network features.

    A family maps the features of a network to the parameters of a
    distribution over `event_shape` (TFP's `params_size` idea): the network
    stays the same when the family changes. `call(features)` returns the
    parameters as a dict of plain tensors, `distribution(parameters)` builds
    the TFP distribution from them. The model that holds the family calls
    `build(features_shape, event_shape)` once the data shape is known.

    Under a mixed-precision policy the projection runs in the compute dtype
    (float16 or bfloat16) and the parameters come out in float32, so every
    density, KL and log-weight built from them is computed in float32.

    Subclasses implement `params_shape()`, `parameters(raw)` and
    `distribution(parameters)`, and may add weights in `build`.
    """

    def build(self, features_shape, event_shape):
        self.event_shape = tuple(int(d) for d in event_shape)
        self.features_shape = tuple(features_shape)
        raw_shape = self.params_shape()
        per_position = tuple(features_shape[1:-1]) == raw_shape[: len(features_shape) - 2]
        if len(features_shape) > 2 and per_position:
            # Convolutional features already laid out like the event: project each position.
            units = math.prod(raw_shape[len(features_shape) - 2 :])
            self.flatten = None
        else:
            units = math.prod(raw_shape)
            self.flatten = keras.layers.Flatten(dtype=self.dtype_policy)
        self.projection = keras.layers.Dense(units, dtype=self.dtype_policy, name="projection")
        in_dim = features_shape[-1] if self.flatten is None else math.prod(features_shape[1:])
        self.projection.build((None, in_dim))
        freeze_if_not_trainable(self)

    def call(self, features):
        if self.flatten is not None:
            features = self.flatten(features)
        raw = self.projection(features)
        raw = keras.ops.reshape(raw, (-1, *self.params_shape()))
        return self.parameters(keras.ops.cast(raw, "float32"))

    def params_shape(self):
        """The shape of the raw parameters of one example."""
        raise NotImplementedError

    def parameters(self, raw):
        """Maps raw projections `(batch, *params_shape)` to named parameters."""
        raise NotImplementedError

    def distribution(self, parameters):
        """The TFP distribution with the given parameters."""
        raise NotImplementedError

    def get_build_config(self):
        if not self.built:  # Like `keras.layers.Layer`: no build config before `build`.
            return None
        return {"features_shape": self.features_shape, "event_shape": self.event_shape}

    def build_from_config(self, config):
        self.build(**config)

    @property
    def event_size(self):
        return math.prod(self.event_shape)
