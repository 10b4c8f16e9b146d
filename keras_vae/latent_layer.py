"""A stochastic layer above the first: its networks in both directions."""

import keras
import tensorflow as tf

from keras_vae.posteriors import DiagonalNormal
from keras_vae.trainable import freeze_if_not_trainable
from keras_vae.validation import check_positive_int

__all__ = ["LatentLayer"]

serialize = keras.saving.serialize_keras_object
deserialize = keras.saving.deserialize_keras_object


@keras.saving.register_keras_serializable(package="keras_vae")
class LatentLayer(keras.layers.Layer):
    """A latent layer z_i stacked on the layer below it, z_{i-1} (Burda et al., 2016).

    A `keras_vae.VAE` with `latent_layers=[LatentLayer(...), ...]` has the
    generative model p(z_L) p(z_{L-1}|z_L) ... p(z_1|z_2) p(x|z_1) and the
    inference model q(z_1|x) q(z_2|z_1) ... q(z_L|z_{L-1}). This layer holds
    the two conditionals that link z_i to the layer below:

        q(z_i|z_{i-1}) = N(loc, diag(scale^2)),  loc, scale from encoder(z_{i-1})
        p(z_{i-1}|z_i) = N(loc, diag(scale^2)),  loc, scale from decoder(z_i)

    each through a `DiagonalNormal` family (`posterior` and `prior`), so that
    both are affine maps of standard-normal noise.

    Args:
        latent_dim: Size of z_i.
        encoder: Keras layer from `(batch, size of z_{i-1})` to features.
        decoder: Keras layer from `(batch, latent_dim)` to features.

    Example:

    >>> import keras_vae as kv
    >>> layer = LatentLayer(2, kv.networks.MLP([8]), kv.networks.MLP([8]))
    >>> layer.build(4)
    >>> layer.posterior_parameters(tf.zeros((5, 3, 4)))["loc"].shape
    TensorShape([5, 3, 2])
    >>> layer.prior_parameters(tf.zeros((3, 2)))["scale"].shape
    TensorShape([3, 4])
    """

    def __init__(self, latent_dim, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        check_positive_int("latent_dim", latent_dim)
        self.latent_dim = int(latent_dim)
        self.encoder = encoder
        self.decoder = decoder
        self.posterior = DiagonalNormal(dtype=self.dtype_policy, name="posterior")
        self.prior = DiagonalNormal(dtype=self.dtype_policy, name="prior")

    def build(self, below_dim):
        self.below_dim = int(below_dim)
        # Networks deserialized from a `.keras` file arrive built.
        for network, size in ((self.encoder, self.below_dim), (self.decoder, self.latent_dim)):
            if not network.built:
                network.build((None, size))
        features = self.encoder.compute_output_shape((None, self.below_dim))
        self.posterior.build(features, (self.latent_dim,))
        features = self.decoder.compute_output_shape((None, self.latent_dim))
        self.prior.build(features, (self.below_dim,))
        freeze_if_not_trainable(self)

    def posterior_parameters(self, below, hold_weights=False):
        """loc and scale of q(z_i|z_{i-1}) for `below` of shape `(..., below_dim)`.

        With `hold_weights`, the encoder's and family's weights get no gradient
        (z_{i-1} still does): STL and DReG hold phi in log q(z|x).
        """
        return _over_leading_axes(self.posterior, self.encoder, below, self.below_dim, hold_weights)

    def prior_parameters(self, z):
        """loc and scale of p(z_{i-1}|z_i) for `z` of shape `(..., latent_dim)`."""
        return _over_leading_axes(self.prior, self.decoder, z, self.latent_dim)

    def get_build_config(self):
        return {"below_dim": self.below_dim} if self.built else None

    def build_from_config(self, config):
        self.build(**config)

    def get_config(self):
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "encoder": serialize(self.encoder),
            "decoder": serialize(self.decoder),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("encoder", "decoder"):
            config[name] = deserialize(config[name])
        return cls(**config)


def _over_leading_axes(family, network, inputs, size, hold_weights=False):
    # Networks flatten all but the batch axis: fold the sample axes into the batch.
    leading = tf.shape(inputs)[:-1]
    call = _with_held_weights if hold_weights else lambda layer, inputs: layer(inputs)
    parameters = call(family, call(network, tf.reshape(inputs, (-1, size))))
    return {
        name: tf.reshape(value, tf.concat([leading, tf.shape(value)[1:]], 0))
        for name, value in parameters.items()
    }


def _with_held_weights(layer, inputs):
    # The layer's own computation, on its weights' values with the gradient stopped.
    trainable = [tf.stop_gradient(variable.value) for variable in layer.trainable_variables]
    non_trainable = [variable.value for variable in layer.non_trainable_variables]
    outputs, _ = layer.stateless_call(trainable, non_trainable, inputs)
    return outputs
