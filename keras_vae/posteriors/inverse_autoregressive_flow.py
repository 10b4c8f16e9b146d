"""q(z|x): a diagonal Gaussian pushed through inverse autoregressive flows."""

import collections

import keras
import tensorflow_probability as tfp

from keras_vae.networks.made import MADE
from keras_vae.posteriors.posterior import Posterior
from keras_vae.validation import check_positive_int, is_integer

__all__ = ["InverseAutoregressiveFlow"]

tfb = tfp.bijectors
tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="keras_vae")
class InverseAutoregressiveFlow(Posterior):
    """Inverse autoregressive flow posterior (Kingma et al., 2016).

    The encoder's features give a diagonal Gaussian and a context h; each of
    `num_flows` steps t transforms the sample with a masked autoregressive
    network (`keras_vae.networks.MADE`) of z and h:

        z_0 = loc + scale * eps,                        eps ~ N(0, I)
        z_t = (z_{t-1} - shift_t(z_{t-1}, h)) * exp(-log_scale_t(z_{t-1}, h))
        log q(z_T|x) = log N(z_0; loc, scale^2) + sum_t sum_i log_scale_t,i

    Every output i of a step depends on the dimensions before i only, so its
    Jacobian is triangular and a step is parallel in the sampling direction;
    steps alternate the order. It is TFP's
    `Invert(MaskedAutoregressiveFlow)`, chained over a
    `MultivariateNormalDiag`; its log_prob at a given z inverts each step one
    dimension at a time (latent_dim network calls per step). Samples drawn by
    `reparameterize` are remembered with their base draw (TFP's bijector
    cache), so that the bounds' log q(z|x) at them costs one parallel pass.
    The networks' last layers start at zero: a new flow is the identity, and
    the posterior equals `DiagonalNormal`. TFP has no closed-form KL for it:
    the model estimates the KL by Monte Carlo.

    Args:
        num_flows: Number of flow steps T.
        hidden_units: Hidden layer sizes of each step's network, each at
            least `latent_dim - 1`.
        context_units: Size of the context h projected from the features; 0
            for none.
        activation: Activation of the networks' hidden layers.
        min_scale: Lower bound of the base Gaussian's scales.

    Example:

    >>> import numpy as np
    >>> posterior = InverseAutoregressiveFlow(num_flows=2, hidden_units=[8])
    >>> posterior.build((None, 8), (3,))
    >>> parameters = posterior(np.zeros((4, 8), "float32"))
    >>> sorted(parameters)
    ['context', 'loc', 'scale']
    >>> z = posterior.reparameterize(parameters, np.zeros((1, 4, 3), "float32"))
    >>> tuple(posterior.distribution(parameters).log_prob(z).shape)
    (1, 4)
    """

    def __init__(
        self, num_flows=2, hidden_units=(64,), context_units=16, activation="elu", **kwargs
    ):
        super().__init__(**kwargs)
        check_positive_int("num_flows", num_flows)
        if not (is_integer(context_units) and context_units >= 0):
            raise ValueError(
                "Expected `context_units` to be a non-negative integer. "
                f"Received: context_units={context_units!r}"
            )
        self.num_flows = num_flows
        self.hidden_units = [int(units) if is_integer(units) else units for units in hidden_units]
        self.context_units = int(context_units)
        self.activation = activation
        self.networks = [
            MADE(
                self.hidden_units,
                params=2,
                activation=activation,
                reverse=step % 2 == 1,
                dtype=self.dtype_policy,
                name=f"made_{step}",
            )
            for step in range(num_flows)
        ]
        # Not a list: Keras and TensorFlow would track the bijectors in it as state.
        self._bijectors = collections.deque(maxlen=4)

    def build(self, features_shape, event_shape):
        super().build(features_shape, event_shape)
        context_shape = (None, self.context_units) if self.context_units else None
        for network in self.networks:
            network.build((None, self.event_size), context_shape)

    def params_shape(self):
        return (2 * self.event_size + self.context_units,)

    def parameters(self, raw):
        size = self.event_size
        loc, raw_scale, context = raw[..., :size], raw[..., size : 2 * size], raw[..., 2 * size :]
        parameters = {"loc": loc, "scale": keras.ops.softplus(raw_scale) + self.min_scale}
        if self.context_units:
            parameters["context"] = context
        return parameters

    def bijector(self, parameters):
        """The flow z_0 -> z_T for these parameters: a TFP bijector.

        The same tensors give the same bijector object, whose cache knows the
        samples it made.
        """
        key = tuple(value.ref() for value in parameters.values())
        for known, bijector in self._bijectors:
            if known == key:
                return bijector
        context = parameters.get("context")
        steps = []
        for network in self.networks:
            steps.append(
                tfb.Invert(tfb.MaskedAutoregressiveFlow(_shift_and_log_scale(network, context)))
            )
        bijector = tfb.Chain(steps[::-1])  # Chain applies its last bijector first.
        # The latest few: a training step or a signature builds two or three.
        self._bijectors.append((key, bijector))
        return bijector

    def distribution(self, parameters):
        base = tfd.MultivariateNormalDiag(loc=parameters["loc"], scale_diag=parameters["scale"])
        return tfd.TransformedDistribution(base, self.bijector(parameters))

    def reparameterize(self, parameters, noise):
        return self.bijector(parameters).forward(parameters["loc"] + parameters["scale"] * noise)

    def get_config(self):
        return {
            **super().get_config(),
            "num_flows": self.num_flows,
            "hidden_units": self.hidden_units,
            "context_units": self.context_units,
            "activation": self.activation,
        }


def _shift_and_log_scale(network, context):
    def shift_and_log_scale(z):
        outputs = network(z, context)  # (..., latent_dim, 2)
        return outputs[..., 0], outputs[..., 1]

    return shift_and_log_scale
