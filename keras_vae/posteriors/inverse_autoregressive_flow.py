"""q(z|x): a diagonal Gaussian pushed through inverse autoregressive flows."""

import collections

import keras
import tensorflow as tf
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

        z_0 = base_loc + base_scale * eps,              eps ~ N(0, I)
        z_t = (z_{t-1} - shift_t(z_{t-1}, h)) * exp(-log_scale_t(z_{t-1}, h))
        log q(z_T|x) = log N(z_0; base_loc, base_scale^2) + sum_t sum_i log_scale_t,i

    Output i of a step depends on the dimensions before i only, so its
    Jacobian is triangular and a step is parallel in the sampling direction;
    steps alternate the order. It is TFP's `Invert(MaskedAutoregressiveFlow)`
    chained over a `MultivariateNormalDiag`. The parameters are `base_loc`,
    `base_scale`, `context` and `loc`, the flow of `base_loc` (z at eps = 0),
    which the model decodes as the reconstruction.

    `distribution(parameters).log_prob(z)` is exact. At an arbitrary z it
    inverts each step one dimension at a time (`latent_dim` network calls per
    step); at a draw of `reparameterize` with the same parameter tensors it
    reads the base draw from TFP's bijector cache, so the bounds' log q(z|x)
    costs one parallel pass. The networks' last layers start at zero: a new
    flow is the identity, and the posterior equals `DiagonalNormal`. TFP has
    no closed-form KL for it: the model estimates the KL by Monte Carlo. The
    STL and DReG estimators hold phi in log q(z|x): `held_distribution` holds
    the networks' weights as well as the parameters.

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
    ['base_loc', 'base_scale', 'context', 'loc']
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
        # In float32 under mixed precision too: their outputs make the log-density's log |det|.
        self.networks = [
            MADE(
                hidden_units,
                params=2,
                activation=activation,
                reverse=step % 2 == 1,
                dtype="float32",
                name=f"made_{step}",
            )
            for step in range(num_flows)
        ]
        self.num_flows = num_flows
        self.hidden_units = self.networks[0].hidden_units  # checked, as plain integers
        self.context_units = int(context_units)
        self.activation = activation
        # Not a list: Keras and TensorFlow would track the bijectors in it as state.
        self._bijectors = collections.deque(maxlen=8)

    def build(self, features_shape, event_shape):
        super().build(features_shape, event_shape)
        context_shape = (None, self.context_units) if self.context_units else None
        for network in self.networks:
            network.build((None, self.event_size), context_shape)

    def params_shape(self):
        return (2 * self.event_size + self.context_units,)

    def parameters(self, raw):
        size = self.event_size
        base_loc, raw_scale = raw[..., :size], raw[..., size : 2 * size]
        parameters = {
            "base_loc": base_loc,
            "base_scale": keras.ops.softplus(raw_scale) + self.min_scale,
        }
        if self.context_units:
            parameters["context"] = raw[..., 2 * size :]
        # z at eps = 0, where the model reads a point of q(z|x) (`reconstruct`, plots).
        parameters["loc"] = self.flow(parameters.get("context")).forward(base_loc)
        return parameters

    def flow(self, context=None, hold_weights=False):
        """The TFP bijector z_0 -> z_T given the context h (`None` without one).

        With `hold_weights`, a function of z and h alone: no gradient reaches
        the networks' weights.
        """
        steps = [
            tfb.Invert(
                tfb.MaskedAutoregressiveFlow(_shift_and_log_scale(network, context, hold_weights))
            )
            for network in self.networks
        ]
        return tfb.Chain(steps[::-1])  # Chain applies its last bijector first.

    def bijector(self, parameters):
        """The flow for these parameters; the same tensors give the same bijector object.

        So the bijector made for a draw in `reparameterize` is the one whose
        cache knows that draw when `distribution(parameters).log_prob` meets it.
        """
        key = tuple(value.ref() for value in parameters.values())
        for known, bijector in self._bijectors:
            if known == key:
                return bijector
        bijector = self.flow(parameters.get("context"))
        self._bijectors.append((key, bijector))  # The last few: one or two per replica's step.
        return bijector

    def distribution(self, parameters):
        base = tfd.MultivariateNormalDiag(parameters["base_loc"], parameters["base_scale"])
        return tfd.TransformedDistribution(base, self.bijector(parameters))

    def held_distribution(self, parameters):
        # phi is the parameters and the networks' weights: both held. At the draws of
        # `reparameterize` it is a new bijector, which inverts them one dimension at a time.
        parameters = tf.nest.map_structure(tf.stop_gradient, parameters)
        base = tfd.MultivariateNormalDiag(parameters["base_loc"], parameters["base_scale"])
        flow = self.flow(parameters.get("context"), hold_weights=True)
        return tfd.TransformedDistribution(base, flow)

    def reparameterize(self, parameters, noise):
        base = parameters["base_loc"] + parameters["base_scale"] * noise
        return self.bijector(parameters).forward(base)

    def get_config(self):
        return {
            **super().get_config(),
            "num_flows": self.num_flows,
            "hidden_units": self.hidden_units,
            "context_units": self.context_units,
            "activation": self.activation,
        }


def _shift_and_log_scale(network, context, hold_weights=False):
    def shift_and_log_scale(z):
        outputs = network(z, context, hold_weights=hold_weights)  # (..., latent_dim, 2)
        return outputs[..., 0], outputs[..., 1]

    return shift_and_log_scale
