"""The base class of posterior families q(z|x)."""

import tensorflow as tf

from keras_vae.family import Family
from keras_vae.validation import check_non_negative

__all__ = ["Posterior"]


class Posterior(Family):
    """A family of approximate posteriors q(z|x) over `(latent_dim,)`.

    Besides the `Family` methods, a posterior draws reparameterized samples
    from standard-normal noise: `reparameterize(parameters, noise)` is a
    deterministic function of `noise`, so gradients flow through it and
    exported graphs can take the noise as an input.

    Args:
        min_scale: Lower bound of the scales (standard deviations), which
            keeps `log_prob` finite.
    """

    def __init__(self, min_scale=1e-4, **kwargs):
        super().__init__(**kwargs)
        check_non_negative("min_scale", min_scale)
        self.min_scale = min_scale

    def get_config(self):
        return {**super().get_config(), "min_scale": self.min_scale}

    def held_distribution(self, parameters):
        """q(z|x) as a function of z alone, phi held constant (for STL and DReG).

        The parameters are held; a posterior with weights of its own beyond
        them (a flow's networks) holds those too.
        """
        return self.distribution(tf.nest.map_structure(tf.stop_gradient, parameters))

    def mean(self, parameters):
        """The point estimate of z a model reports for x (embeddings, reconstructions).

        `parameters["loc"]`, the mean of a Gaussian posterior; a family whose
        `loc` is not its mean says what it returns instead.
        """
        return parameters["loc"]

    def reparameterize(self, parameters, noise):
        """Maps `noise ~ N(0, I)` of shape `(..., batch, latent_dim)` to z."""
        raise NotImplementedError
