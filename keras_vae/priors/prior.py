"""The base class of priors p(z)."""

import keras

__all__ = ["Prior"]


class Prior(keras.layers.Layer):
    """A prior p(z) over `(latent_dim,)`, possibly with learned weights.

    The model calls `build(latent_dim, data_shape)` once the data shape is
    known, then `distribution(encode)` wherever it needs p(z). `encode` maps a
    batch of inputs to q(z|x); priors defined through the encoder (VampPrior)
    use it, the others ignore it.
    """

    def build(self, latent_dim, data_shape):
        self.latent_dim = int(latent_dim)
        self.data_shape = tuple(int(d) for d in data_shape)

    def distribution(self, encode):
        """The prior as a TFP distribution with event shape `(latent_dim,)`."""
        raise NotImplementedError

    def get_build_config(self):
        if not self.built:  # Like `keras.layers.Layer`: no build config before `build`.
            return None
        return {"latent_dim": self.latent_dim, "data_shape": self.data_shape}

    def build_from_config(self, config):
        self.build(**config)
