"""The base class of likelihood families p(x|z)."""

from keras_vae.family import Family

__all__ = ["Likelihood"]


class Likelihood(Family):
    """A family of observation models p(x|z) over the data's `event_shape`.

    The raw parameters have shape `(*event_shape, num_params)`: `num_params`
    numbers per data dimension. Subclasses set `num_params`, implement
    `parameters`, `distribution` and `mean`, and may restrict the data to
    `support` (an inclusive `(low, high)` pair, or None for the real line).
    """

    num_params = 1
    support = None

    def params_shape(self):
        return (*self.event_shape, self.num_params)

    def log_prob(self, parameters, x):
        """log p(x|z) summed over the event, shape `parameters`' batch shape.

        Defaults to the distribution's `log_prob`; a family may override it
        with a fused equivalent.
        """
        return self.distribution(parameters).log_prob(x)

    def mean(self, parameters):
        """The mean of p(x|z) as a tensor of shape `(batch, *event_shape)`."""
        raise NotImplementedError
