"""The base class of posterior families q(z|x)."""

from keras_vae.family import Family

__all__ = ["Posterior"]


class Posterior(Family):
    """A family of approximate posteriors q(z|x) over `(latent_dim,)`.

    Besides the `Family` methods, a posterior draws reparameterized samples
    from standard-normal noise: `reparameterize(parameters, noise)` is a
    deterministic function of `noise`, so gradients flow through it and
    exported graphs can take the noise as an input.
    """

    def reparameterize(self, parameters, noise):
        """Maps `noise ~ N(0, I)` of shape `(..., batch, latent_dim)` to z."""
        raise NotImplementedError
