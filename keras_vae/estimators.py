"""Gradient estimators of the bounds, each as a surrogate loss.

Write phi for the inference model's weights (encoder and posterior), theta for
the generative model's (decoder, likelihood, prior), and z = g(eps, phi) ~ q(z|x)
with eps ~ N(0, I). An estimator's `loss(vae, x)` is a per-example tensor whose
value is the training objective (the negative ELBO with `beta` and `free_bits`,
or the negative IWAE bound) and whose gradient is the estimator's:

    loss = stop(objective) + surrogate - stop(surrogate)

so `fit` reports the objective while the optimizer follows the estimator.

* `"reparameterization"` (Kingma & Welling, 2014): gradients through z.
* `"score_function"` (Ranganath et al., 2014; Mnih & Gregor, 2014): z held
  constant, the inference gradient from grad log q(z|x), with baselines.
* `"stl"`, sticking the landing (Roeder et al., 2017): the score term of
  log q(z|x) dropped.
* `"dreg"`, doubly reparameterized IWAE gradients (Tucker et al., 2019).
"""

import keras
import tensorflow as tf

from keras_vae import objectives
from keras_vae.networks import MLP
from keras_vae.posteriors import DiagonalNormal
from keras_vae.priors import StandardNormal
from keras_vae.validation import check_non_negative, check_positive_int

__all__ = [
    "DReG",
    "ESTIMATORS",
    "Estimator",
    "Reparameterization",
    "ScoreFunction",
    "StickingTheLanding",
    "check_applicable",
    "get",
    "training_loss",
]

stop = tf.stop_gradient


class Estimator(keras.layers.Layer):
    """A gradient estimator of a VAE's training objective.

    A Keras layer, so that state it learns (baselines) is part of the model:
    trained by `fit`, saved in `.keras` files and backups. The model builds it
    with its data shape. Subclasses set `identifier`, the `objectives` they
    estimate (and `why_not`, said when asked for another) and implement `loss`.
    """

    identifier = None
    objectives = ("elbo", "iwae")
    why_not = ""
    supports_free_bits = True

    def build(self, data_shape):
        self.data_shape = tuple(int(d) for d in data_shape)

    def loss(self, vae, x, update=True):
        """The per-example training loss of `vae` on `x`, with this estimator's gradient.

        Args:
            vae: A built `keras_vae.VAE`.
            x: A batch of data.
            update: Whether to update running statistics (baselines).

        Returns:
            `(loss, terms)`: the `(batch,)` loss, and a dict of the `(batch,)`
            bound terms `elbo`, `reconstruction` and `kl`.
        """
        raise NotImplementedError

    def get_build_config(self):
        return {"data_shape": self.data_shape} if self.built else None

    def build_from_config(self, config):
        self.build(**config)


def training_loss(vae, terms, posterior_parameters):
    """The value minimized: beta * KL - reconstruction (KL floored by free bits), or -iwae.

    Args:
        vae: The model, for its objective, `beta` and `free_bits`.
        terms: Bound terms, with `log_weights` under the IWAE objective.
        posterior_parameters: q(z|x)'s parameters, for the per-dimension KL.
    """
    if vae.objective == "iwae":
        return -objectives.iwae_bound(terms["log_weights"])
    kl = terms["kl"]
    if vae.free_bits:
        kl_per_dim = objectives.kl_per_dimension(posterior_parameters)
        kl = objectives.free_bits_kl(kl_per_dim, vae.free_bits)
    return tf.cast(vae.beta, kl.dtype) * kl - terms["reconstruction"]


def with_gradient(value, surrogate):
    """A tensor with the value of `value` and the gradient of `surrogate`."""
    return stop(value) + (surrogate - stop(surrogate))


def log_likelihood(vae, x, z):
    """log p(x|z) (log p(x|z, c) for a conditional VAE), `(num_samples, batch)`."""
    return vae.data_log_prob(x, z)


@keras.saving.register_keras_serializable(package="keras_vae")
class Reparameterization(Estimator):
    """The reparameterization gradient (Kingma & Welling, 2014): through z = g(eps, phi).

        grad elbo = E_eps[grad (log p(x|g(eps, phi)) - KL(q || p))]

    with the KL and its gradient in closed form where TFP has one. The same
    for the IWAE bound, whose gradient weights each sample's by its
    normalized importance weight.

    Example:

    >>> import keras_vae as kv
    >>> vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), 2, estimator="reparameterization")
    """

    identifier = "reparameterization"

    def loss(self, vae, x, update=True):
        x, parameters, z = vae.sample_posterior(x, vae.num_samples)
        terms = objectives.bound_terms(
            log_likelihood(vae, x, z),
            vae.posterior_distribution(parameters),
            vae.prior_distribution(),
            z,
            log_weights=vae.objective == "iwae",
        )
        loss = training_loss(vae, terms, parameters)
        terms.pop("log_weights", None)
        return loss, terms


@keras.saving.register_keras_serializable(package="keras_vae")
class StickingTheLanding(Estimator):
    """Sticking the landing (Roeder et al., 2017): the path derivative of the ELBO.

    With z = g(eps, phi), the total derivative of log q(z|x) has a path term
    and a score term, grad_phi log q(z|x; phi) at fixed z, whose expectation is
    zero. STL drops it by evaluating log q with its parameters held constant:

        surrogate = -[log p(x|z) - beta * (log q(z|x; stop(phi)) - log p(z))]

    an unbiased estimator of the reparameterization gradient with zero
    variance when q(z|x) is the exact posterior. The ELBO only: for the IWAE
    bound it is biased (Tucker et al., 2019), use `"dreg"`.

    Example:

    >>> import keras_vae as kv
    >>> vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), 2, estimator="stl")
    """

    identifier = "stl"
    objectives = ("elbo",)
    why_not = "it is biased for the IWAE bound (Tucker et al., 2019); use estimator='dreg'"
    supports_free_bits = False

    def loss(self, vae, x, update=True):
        x, parameters, z = vae.sample_posterior(x, vae.num_samples)
        log_likelihoods = log_likelihood(vae, x, z)
        prior = vae.prior_distribution()
        terms = objectives.bound_terms(
            log_likelihoods, vae.posterior_distribution(parameters), prior, z
        )
        fixed_posterior = vae.held_posterior_distribution(parameters)
        log_ratio = objectives.log_density_ratio(fixed_posterior, prior, z)
        beta = tf.cast(vae.beta, log_ratio.dtype)
        surrogate = tf.reduce_mean(beta * log_ratio - log_likelihoods, axis=0)
        return with_gradient(training_loss(vae, terms, parameters), surrogate), terms


@keras.saving.register_keras_serializable(package="keras_vae")
class DReG(Estimator):
    """Doubly reparameterized gradients of the IWAE bound (Tucker et al., 2019).

    With log w_i = log p(x, z_i) - log q(z_i|x) and normalized weights
    w~_i = w_i / sum_j w_j, the IWAE gradient for phi is
    sum_i w~_i (path + score of log w_i); its score part rewritten by a second
    reparameterization gives

        grad_phi iwae = E[sum_i w~_i^2 d log w_i / d z_i  d z_i / d phi]

    (log q evaluated with phi held constant), whose signal-to-noise ratio does
    not fall as k grows. theta keeps the IWAE gradient, sum_i w~_i grad log w_i.
    One surrogate gives both, the second term at constant z:

        surrogate = -sum_i [stop(w~_i^2) log w_i(z_i) + stop(w~_i - w~_i^2) log w_i(stop(z_i))]

    Needs `objective="iwae"`.

    Example:

    >>> import keras_vae as kv
    >>> vae = kv.VAE(
    ...     kv.networks.MLP([8]), kv.networks.MLP([8]), 2,
    ...     objective="iwae", num_samples=5, estimator="dreg",
    ... )
    """

    identifier = "dreg"
    objectives = ("iwae",)
    why_not = "it estimates the gradient of the IWAE bound"

    def loss(self, vae, x, update=True):
        x, parameters, z = vae.sample_posterior(x, vae.num_samples)
        num_samples = vae.num_samples
        # One decoder call for z (gradients to phi through it) and constant z (to theta).
        both = log_likelihood(vae, x, tf.concat([z, stop(z)], 0))  # (2 * num_samples, batch)
        log_likelihoods = both[:num_samples]
        prior = vae.prior_distribution()
        terms = objectives.bound_terms(
            log_likelihoods, vae.posterior_distribution(parameters), prior, z, log_weights=True
        )
        fixed_posterior = vae.held_posterior_distribution(parameters)
        log_weights = log_likelihoods - objectives.log_density_ratio(fixed_posterior, prior, z)
        fixed_z = stop(z)
        fixed_log_weights = both[num_samples:] - objectives.log_density_ratio(
            fixed_posterior, prior, fixed_z
        )
        normalized = stop(tf.nn.softmax(terms["log_weights"], axis=0))  # (num_samples, batch)
        surrogate = -tf.reduce_sum(
            normalized**2 * log_weights + (normalized - normalized**2) * fixed_log_weights, axis=0
        )
        loss = with_gradient(training_loss(vae, terms, parameters), surrogate)
        terms.pop("log_weights")
        return loss, terms


@keras.saving.register_keras_serializable(package="keras_vae")
class ScoreFunction(Estimator):
    """The score-function (REINFORCE) estimator of black-box VI, with control variates.

    z is drawn and held constant. The inference gradient is

        grad_phi elbo = E_q[(f(z) - c - b(x)) grad_phi log q(z|x)] - beta grad_phi KL(q || p)
        f(z) = log p(x|z)                                   (KL in closed form)
        f(z) = log p(x|z) - beta * (log q(z|x) - log p(z))  (otherwise)

    with the KL's gradient taken exactly where TFP has it in closed form
    (Rao-Blackwellization; Ranganath et al., 2014). The baselines do not
    depend on z, so the estimator stays unbiased (Mnih & Gregor, 2014): c is a
    running average of f (a bias-corrected exponential moving average, read
    before this batch updates it), and b(x) a network trained to predict
    f - c by its own squared-error loss, whose gradient reaches only b's
    weights. The generative model's gradient stays pathwise,
    E_q[grad_theta log p(x|z)]. The ELBO only.

    Args:
        running_average: Whether to subtract the running average c.
        baseline_units: Hidden units of the input-dependent baseline network
            b(x), or None for no network.
        decay: Decay of the running average.

    Example:

    >>> import keras_vae as kv
    >>> vae = kv.VAE(
    ...     kv.networks.MLP([8]), kv.networks.MLP([8]), 2,
    ...     estimator=kv.estimators.ScoreFunction(baseline_units=None),
    ... )
    """

    identifier = "score_function"
    objectives = ("elbo",)
    why_not = "it estimates the ELBO's gradient only"

    def __init__(self, running_average=True, baseline_units=100, decay=0.9, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(running_average, bool):
            raise ValueError(
                "Expected `running_average` to be a boolean. "
                f"Received: running_average={running_average!r}"
            )
        if baseline_units is not None:
            check_positive_int("baseline_units", baseline_units)
        if not (isinstance(decay, (int, float)) and 0 <= decay < 1):
            raise ValueError(f"Expected `decay` in [0, 1). Received: decay={decay!r}")
        self.running_average = running_average
        self.baseline_units = baseline_units
        self.decay = decay
        self.baseline = None
        if baseline_units is not None:
            self.baseline = keras.Sequential(
                [MLP([baseline_units], "tanh"), keras.layers.Dense(1)], name="baseline"
            )

    def build(self, data_shape):
        super().build(data_shape)
        if self.running_average:
            # "mean": replicas each assign the average of their batch, and it is averaged.
            self.average = self.add_weight(
                shape=(), initializer="zeros", trainable=False, aggregation="mean", name="average"
            )
            self.average_count = self.add_weight(
                shape=(), initializer="zeros", trainable=False, aggregation="mean", name="count"
            )
        if self.baseline is not None:
            self.baseline.build((None, *self.data_shape))

    def loss(self, vae, x, update=True):
        x, parameters, z = vae.sample_posterior(x, vae.num_samples)
        z = stop(z)
        log_likelihoods = log_likelihood(vae, x, z)  # gradients to theta only
        posterior, prior = vae.posterior_distribution(parameters), vae.prior_distribution()
        terms = objectives.bound_terms(log_likelihoods, posterior, prior, z)
        log_posterior = posterior.log_prob(z)  # (num_samples, batch)
        signal = log_likelihoods
        if not objectives.has_closed_form_kl(posterior, prior):
            beta = tf.cast(vae.beta, signal.dtype)
            signal -= beta * objectives.log_density_ratio(posterior, prior, z)
        signal = stop(signal)
        baseline, baseline_loss = self.baselines(vae.split_inputs(x)[0], signal, update)
        score = tf.reduce_mean(stop(signal - baseline) * log_posterior, axis=0)
        value = training_loss(vae, terms, parameters)
        return with_gradient(value, value - score + baseline_loss), terms

    def baselines(self, x, signal, update):
        """c + b(x), `(batch,)`, and b's squared-error loss, `(batch,)`."""
        average = tf.zeros((), signal.dtype)
        if self.running_average:
            # Bias-corrected, as Adam's moments: the average is 0 before any batch.
            correction = 1.0 - self.decay ** tf.cast(self.average_count, signal.dtype)
            average = self.average / tf.maximum(correction, 1e-12)
            if update:
                batch_mean = tf.reduce_mean(signal)
                self.average.assign(self.decay * self.average + (1 - self.decay) * batch_mean)
                self.average_count.assign_add(1.0)
        if self.baseline is None:
            return average, tf.zeros_like(signal[0])
        predicted = tf.cast(self.baseline(x)[:, 0], signal.dtype)  # (batch,)
        baseline_loss = tf.reduce_mean(tf.square(signal - average - predicted), axis=0)
        return average + stop(predicted), baseline_loss

    def get_config(self):
        return {
            **super().get_config(),
            "running_average": self.running_average,
            "baseline_units": self.baseline_units,
            "decay": self.decay,
        }


ESTIMATORS = {
    cls.identifier: cls for cls in (Reparameterization, ScoreFunction, StickingTheLanding, DReG)
}


def get(identifier):
    """An `Estimator` from its name in `ESTIMATORS`, or the estimator itself.

    Example:

    >>> type(get("stl")).__name__
    'StickingTheLanding'
    """
    if isinstance(identifier, Estimator):
        return identifier
    if isinstance(identifier, str) and identifier in ESTIMATORS:
        return ESTIMATORS[identifier]()
    raise ValueError(
        f"Expected `estimator` to be one of {tuple(ESTIMATORS)} or a "
        f"`keras_vae.estimators.Estimator`. Received: estimator={identifier!r}"
    )


def check_applicable(vae):
    """Raises `ValueError` if `vae`'s estimator or free bits do not apply to its model."""
    estimator = vae.estimator
    if vae.objective not in estimator.objectives:
        raise ValueError(
            f"Expected objective in {estimator.objectives} with "
            f"estimator={estimator.identifier!r}: {estimator.why_not}. "
            f"Received: objective={vae.objective!r}"
        )
    check_non_negative("free_bits", vae.free_bits)
    if not vae.free_bits:
        return
    reasons = []
    if vae.objective != "elbo":
        reasons.append(f"objective={vae.objective!r}")
    if not estimator.supports_free_bits:
        reasons.append(f"estimator={estimator.identifier!r}")
    if vae.latent_layers:
        reasons.append(f"{len(vae.latent_layers)} latent_layers")
    elif type(vae.posterior) is not DiagonalNormal or type(vae.prior) is not StandardNormal:
        reasons.append(
            f"posterior={type(vae.posterior).__name__}, prior={type(vae.prior).__name__}"
        )
    if reasons:
        raise ValueError(
            "Expected free_bits=0 unless the objective is 'elbo', the estimator uses the "
            "closed-form KL (not 'stl') and the KL per latent dimension has a closed form "
            "(a DiagonalNormal posterior, a StandardNormal prior, no latent_layers). Received: "
            f"free_bits={vae.free_bits!r} with {', '.join(reasons)}"
        )
