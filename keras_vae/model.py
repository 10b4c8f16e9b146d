"""The variational autoencoder: a Keras model over TFP distributions."""

import contextlib

import keras
import numpy as np
import tensorflow as tf

from keras_vae import (
    conditions,
    distribute,
    estimators,
    fused_steps,
    hierarchy,
    importance,
    objectives,
)
from keras_vae.importance import DEFAULT_MEMORY_BUDGET
from keras_vae.inference import InferenceMixin
from keras_vae.latent_layer import LatentLayer
from keras_vae.likelihoods import Bernoulli
from keras_vae.noise import noise_algorithm
from keras_vae.posteriors import DiagonalNormal, FullCovarianceNormal
from keras_vae.priors import StandardNormal, VampPrior
from keras_vae.priors.temperature import tempered_sample
from keras_vae.trainable import freeze_if_not_trainable
from keras_vae.validation import (
    check_compile_arguments,
    check_data,
    check_finite_weights,
    check_fit_data,
    check_options,
    check_positive_int,
    check_sample_condition,
    data_errors,
)

__all__ = ["VAE"]

serialize = keras.saving.serialize_keras_object
deserialize = keras.saving.deserialize_keras_object


@keras.saving.register_keras_serializable(package="keras_vae")
class VAE(InferenceMixin, keras.Model):
    """A variational autoencoder trained by maximizing the ELBO or the IWAE bound.

    The generative model is p(x, z) = p(z) p(x|z) and the inference model
    q(z|x); `encoder` and `decoder` are plain Keras networks, and the three
    families turn their features into TFP distributions. Training maximizes
    (Kingma & Welling, 2014; Burda et al., 2016)

        elbo = E_q[log p(x|z)] - beta * KL(q(z|x) || p(z))     (objective="elbo")
        iwae = E[log (1/k) sum_i p(x, z_i) / q(z_i|x)]         (objective="iwae", k=num_samples)

    with gradients from `estimator` (reparameterized samples z = loc + scale * eps
    by default; see `keras_vae.estimators`). The KL is in closed form where TFP
    has one, a Monte Carlo estimate otherwise. `fit` and `evaluate` report
    per-example `loss`, `elbo`, `reconstruction` and `kl` in nats: in training,
    `loss` is the objective minimized (with `beta` and `free_bits`); in
    evaluation, the negative bound itself, so that selecting the best model is
    not swayed by an annealed `beta`.

    Args:
        encoder: Keras layer from data `(batch, *data_shape)` to features.
        decoder: Keras layer from latents `(batch, latent_dim)` to features.
        latent_dim: Size of z.
        prior: A `keras_vae.priors.Prior`; `StandardNormal()` when None.
        posterior: A `keras_vae.posteriors.Posterior`; `DiagonalNormal()` when None.
        likelihood: A `keras_vae.likelihoods.Likelihood`; `Bernoulli()` when None.
            Its event shape is taken from the data.
        beta: Weight of the KL term in the training loss (1 for the ELBO): a
            number, or a `keras.Variable` to share. The model keeps it in a
            non-trainable variable, saved with its weights, so that a callback
            setting `vae.beta` (like `keras_vae.callbacks.KLWarmup`) changes the
            next step.
        free_bits: Floor lambda, in nats, on the KL of each latent dimension in
            the training loss (Kingma et al., 2016); 0 for none. See
            `keras_vae.objectives.free_bits_kl`.
        latent_layers: `keras_vae.LatentLayer`s z_2..z_L stacked on z_1 (whose
            size is `latent_dim`), as in Burda et al. (2016): p(z_L) is `prior`
            (which must be `StandardNormal`), q(z_1|x) is `posterior`, and the
            layers give p(z_{i-1}|z_i) and q(z_i|z_{i-1}); see
            `keras_vae.hierarchy`. z is then concat(z_1, ..., z_L), of size
            `latent_size`, everywhere but in `posterior_parameters` (q(z_1|x)'s)
            and the decoder, which sees z_1 only.
        num_samples: Samples of z per example in training (L of AEVB, k of IWAE).
        objective: `"elbo"` or `"iwae"`.
        seed: Seed of the reparameterization noise.
        estimator: The gradient estimator: a name in
            `keras_vae.estimators.ESTIMATORS` or a `keras_vae.estimators.Estimator`.
        condition: None for p(x), or a `keras_vae.conditions.Condition` (an int
            stands for `OneHot(num_classes)`) for a conditional VAE of p(x|c):
            its features join the encoder's features and z before the decoder,
            so q(z|x, c) and p(x|z, c), with the prior p(z). Data then comes
            with its condition: `fit(x, c)` or `fit({"x": x, "condition": c})`,
            datasets of `(x, c)`, `elbo(x, condition=c)`, `sample(n, condition=c)`.

    Call arguments:
        inputs: A batch of data, or `{"x": x, "condition": c}` when conditional.

    Returns:
        The mean of p(x|z) at the posterior mean of z: the reconstruction.

    Example:

    >>> import numpy as np, keras_vae as kv
    >>> vae = kv.VAE(kv.networks.MLP([32]), kv.networks.MLP([32]), latent_dim=2)
    >>> vae.compile(optimizer="adam")
    >>> x = (np.random.rand(64, 8) < 0.5).astype("float32")
    >>> history = vae.fit(x, batch_size=16, epochs=1, verbose=0)
    >>> vae.log_likelihood(x[:4], num_samples=100).shape
    TensorShape([4])
    """

    def __init__(
        self,
        encoder,
        decoder,
        latent_dim,
        prior=None,
        posterior=None,
        likelihood=None,
        beta=1.0,
        num_samples=1,
        objective="elbo",
        seed=None,
        estimator="reparameterization",
        free_bits=0.0,
        condition=None,
        latent_layers=(),
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_options(
            latent_dim=latent_dim,
            beta=objectives.beta_value(beta),
            num_samples=num_samples,
            objective=objective,
        )
        # === Networks and families ===
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior if prior is not None else StandardNormal()
        self.posterior = posterior if posterior is not None else DiagonalNormal()
        self.likelihood = likelihood if likelihood is not None else Bernoulli()
        self.estimator = estimators.get(estimator)
        self.condition = conditions.get(condition)
        if self.condition is not None and isinstance(self.prior, VampPrior):
            raise ValueError(
                "Expected a prior that does not encode pseudo-inputs with a `condition`: the "
                "VampPrior's pseudo-inputs have no condition. Received: prior=VampPrior"
            )
        # === Config ===
        self.latent_dim = latent_dim
        self.beta_variable = objectives.beta_variable(beta)
        self.num_samples = num_samples
        self.objective = objective
        self.seed = seed
        self.free_bits = free_bits
        self.latent_layers = list(latent_layers)
        self._check_latent_layers()
        estimators.check_applicable(self)
        # === State ===
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.elbo_tracker = keras.metrics.Mean(name="elbo")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    def build(self, input_shape):
        if isinstance(input_shape, dict):
            input_shape = input_shape["x"]
        self.data_shape = tuple(int(d) for d in input_shape[1:])
        condition_dim = 0 if self.condition is None else self.condition.dim
        # Families deserialized from a `.keras` file arrive built.
        features = self.encoder(keras.KerasTensor((None, *self.data_shape))).shape
        features = (*features[:-1], features[-1] + condition_dim)
        if not self.posterior.built:
            self.posterior.build(features, (self.latent_dim,))
        features = self.decoder(keras.KerasTensor((None, self.latent_dim + condition_dim))).shape
        if not self.likelihood.built:
            self.likelihood.build(features, self.data_shape)
        below_dim = self.latent_dim
        for layer in self.latent_layers:
            if not layer.built:
                layer.build(below_dim)
            below_dim = layer.latent_dim
        if not self.prior.built:
            self.prior.build(below_dim, self.data_shape)
        if not self.estimator.built:
            self.estimator.build(self.data_shape)
        freeze_if_not_trainable(self)

    def call(self, inputs):
        return self.reconstruct(inputs)

    @property
    def beta(self):
        """The weight of the KL term: a non-trainable variable; setting it assigns."""
        return self.beta_variable

    @beta.setter
    def beta(self, value):
        self.beta_variable.assign(objectives.beta_value(value, check=True))

    @property
    def latent_size(self):
        """The size of z: `latent_dim`, plus that of each of the `latent_layers`."""
        return self.latent_dim + sum(layer.latent_dim for layer in self.latent_layers)

    def _check_latent_layers(self):
        if not all(isinstance(layer, LatentLayer) for layer in self.latent_layers):
            raise ValueError(
                "Expected `latent_layers` to be a list of `keras_vae.LatentLayer`. "
                f"Received: latent_layers={self.latent_layers!r}"
            )
        gaussian = isinstance(self.posterior, (DiagonalNormal, FullCovarianceNormal))
        if self.latent_layers and not (gaussian and type(self.prior) is StandardNormal):
            raise ValueError(
                "Expected a Gaussian posterior (DiagonalNormal or FullCovarianceNormal) and a "
                "StandardNormal prior with `latent_layers`: each layer is an affine map of "
                f"noise. Received: posterior={type(self.posterior).__name__}, "
                f"prior={type(self.prior).__name__}"
            )
        if self.latent_layers and self.condition is not None:
            raise ValueError(
                "Expected condition=None with `latent_layers`: the layers' networks do not take "
                f"the condition. Received: condition={type(self.condition).__name__}"
            )

    @property
    def metrics(self):
        return [self.loss_tracker, self.elbo_tracker, self.reconstruction_tracker, self.kl_tracker]

    # === Conditions ===

    def split_inputs(self, inputs):
        """`(x, condition)` of the model's inputs; the condition is None when unconditional."""
        if self.condition is None:
            return inputs, None
        if not isinstance(inputs, dict) or sorted(inputs) != ["condition", "x"]:
            raise ValueError(
                "Expected inputs `{'x': x, 'condition': c}` for this conditional VAE. "
                f"Received: {type(inputs).__name__}"
            )
        return inputs["x"], inputs["condition"]

    def join_inputs(self, x, condition):
        """The model's inputs from data and condition: the inverse of `split_inputs`."""
        return x if self.condition is None else {"x": x, "condition": condition}

    def with_condition(self, features, condition):
        """`features` `(..., batch, d)` with the condition's `(batch, dim)` concatenated."""
        if self.condition is None:
            if condition is not None:
                raise ValueError(
                    "Expected no `condition`: this VAE models p(x), without one. "
                    f"Received: condition of shape {np.shape(condition)}"
                )
            return features
        if condition is None:
            raise ValueError(
                "Expected a `condition` for this conditional VAE. Received: condition=None"
            )
        encoded = keras.ops.cast(self.condition(condition), features.dtype)
        if len(features.shape) > 2:  # the sample axes of z, then the batch
            leading = tf.shape(features)[:-1]
            encoded = tf.broadcast_to(encoded, tf.concat([leading, [self.condition.dim]], 0))
        # keras.ops, so that `encoder_model` builds a functional model through it.
        return keras.ops.concatenate([features, encoded], -1)

    # === Distributions ===

    def posterior_parameters(self, x):
        """The parameters of q(z|x) (q(z|x, c) when conditional; q(z_1|x) with `latent_layers`)."""
        x, condition = self.split_inputs(x)
        return self.posterior(self.with_condition(self.encoder(x), condition))

    def posterior_distribution(self, parameters):
        """q(z|x) from `posterior_parameters(x)`: a TFP distribution over `(latent_size,)`."""
        if self.latent_layers:
            return hierarchy.posterior_distribution(self, parameters)
        return self.posterior.distribution(parameters)

    def held_posterior_distribution(self, parameters):
        """q(z|x) as a function of z alone, phi held constant (for STL and DReG)."""
        if self.latent_layers:
            return hierarchy.posterior_distribution(self, parameters, hold_weights=True)
        return self.posterior.held_distribution(parameters)

    def reparameterize(self, parameters, noise):
        """z ~ q(z|x) from `posterior_parameters(x)` and N(0, I) noise `(..., latent_size)`."""
        if self.latent_layers:
            return self.posterior_distribution(parameters).bijector.forward(noise)
        return self.posterior.reparameterize(parameters, noise)

    def likelihood_parameters(self, z, condition=None):
        """The parameters of p(x|z) (or p(x|z, c)) for latents `(..., latent_dim)`.

        With `latent_layers`, z may be all of z, `(..., latent_size)`: the decoder sees z_1.
        """
        z = z[..., : self.latent_dim] if self.latent_layers else z
        leading = tf.shape(z)[:-1]
        z = self.with_condition(z, condition)
        features = self.decoder(tf.reshape(z, (-1, z.shape[-1])))
        return {
            name: tf.reshape(value, tf.concat([leading, tf.shape(value)[1:]], 0))
            for name, value in self.likelihood(features).items()
        }

    def data_log_prob(self, inputs, z):
        """log p(x|z) (or log p(x|z, c)) at latents `(..., batch, latent_dim)`."""
        x, condition = self.split_inputs(inputs)
        return self.likelihood.log_prob(self.likelihood_parameters(z, condition), x)

    def encode(self, x):
        """q(z|x): a TFP distribution over `(latent_size,)`."""
        return self.posterior_distribution(self.posterior_parameters(x))

    def decode(self, z, condition=None):
        """p(x|z): a TFP distribution with batch shape `z.shape[:-1]`."""
        return self.likelihood.distribution(self.likelihood_parameters(z, condition))

    def prior_distribution(self):
        """p(z): a TFP distribution with event shape `(latent_size,)`."""
        if self.latent_layers:
            return hierarchy.prior_distribution(self)
        return self.prior.distribution(self.encode)

    # === Bounds ===

    def stateless_seed(self, seed=None):
        """An int32 seed pair for stateless ops: from `seed`, or the next of the model's."""
        seed = self.seed_generator.next() if seed is None else tf.constant([0, seed], tf.int64)
        return tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)

    def standard_normal(self, shape):
        """Noise for the reparameterization, drawn from the model's seed generator.

        Under a `tf.distribute` strategy each replica folds its id into the
        seed, so replicas never draw the same noise.
        """
        seed = self.stateless_seed()
        if tf.distribute.get_strategy().num_replicas_in_sync > 1:
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            seed = tf.random.experimental.stateless_fold_in(seed, replica)
        return tf.random.stateless_normal(shape, seed=seed, alg=noise_algorithm())

    def sample_posterior(self, x, num_samples=1, noise=None):
        """x in the model's dtype, q(z|x)'s parameters and reparameterized z.

        z has shape `(num_samples, batch, latent_size)`; `noise` as in `terms`. A
        conditional model's inputs come back as `{"x": x, "condition": c}`.
        """
        x, condition = self.split_inputs(x)
        x = tf.cast(x, "float32")  # log-densities are float32 under mixed precision too
        inputs = self.join_inputs(x, condition)
        parameters = self.posterior_parameters(inputs)
        if noise is None:
            noise = self.standard_normal((num_samples, tf.shape(x)[0], self.latent_size))
        return inputs, parameters, self.reparameterize(parameters, noise)

    def terms(self, x, num_samples=1, noise=None, log_weights=False):
        """Per-example bound terms, in nats, from `num_samples` draws of z.

        Args:
            x: A batch of data (or `{"x": x, "condition": c}` when conditional).
            num_samples: Draws of z per example.
            noise: Optional standard-normal noise `(num_samples, batch, latent_size)`
                to use instead of drawing it (for exports and reproducible tests).
            log_weights: Whether to return the importance log-weights too.

        Returns:
            A dict of `(batch,)` tensors `elbo`, `reconstruction` and `kl`, and
            `log_weights` of shape `(num_samples, batch)` when asked for.
        """
        x, parameters, z = self.sample_posterior(x, num_samples, noise)
        log_likelihood = self.data_log_prob(x, z)
        # (num_samples, batch)
        posterior = self.posterior_distribution(parameters)
        return objectives.bound_terms(
            log_likelihood, posterior, self.prior_distribution(), z, log_weights
        )

    def elbo(
        self, x, num_samples=1, memory_budget=DEFAULT_MEMORY_BUDGET, seed=None, condition=None
    ):
        """Per-example ELBO, `(batch,)`, with `num_samples` draws for the expectation.

        Computed in chunks whose tensors fit `memory_budget` bytes (see
        `keras_vae.importance`); `seed` fixes the noise, whatever the chunking.
        A conditional model needs the data's `condition` (or x as a dict).
        """
        x = check_data(self, x, condition)
        return importance.bounds(self, x, num_samples, memory_budget, seed)["elbo"]

    def iwae_bound(
        self, x, num_samples, memory_budget=DEFAULT_MEMORY_BUDGET, seed=None, condition=None
    ):
        """Per-example IWAE bound with k = `num_samples`, `(batch,)`; chunked like `elbo`."""
        x = check_data(self, x, condition)
        return importance.bounds(self, x, num_samples, memory_budget, seed)["iwae"]

    def log_likelihood(
        self, x, num_samples=5000, memory_budget=DEFAULT_MEMORY_BUDGET, seed=None, condition=None
    ):
        """Importance-sampled estimate of log p(x) (or log p(x|c)), `(batch,)`: IWAE with large k.

        Any batch and any k run in bounded memory: examples x samples are taken
        a chunk at a time, each chunk compiled with XLA, and combined with
        logsumexp.
        """
        return self.iwae_bound(x, num_samples, memory_budget, seed, condition)

    # === Generation ===

    def decode_mean(self, z, condition=None):
        """The mean of p(x|z) as a tensor, for latents of shape `(..., latent_dim)`."""
        return self.likelihood.mean(self.likelihood_parameters(z, condition))

    def reconstruct(self, x):
        """The mean of p(x|z) at the mean of q(z|x)."""
        condition = self.split_inputs(x)[1]
        return self.decode_mean(self.posterior_mean(x), condition)

    def sample(self, num, seed=None, mean=False, condition=None, temperature=1.0):
        """Generates `num` examples: z ~ p(z), then x ~ p(x|z) (or its mean).

        A conditional model samples p(x|z, c) for `condition`: `num` conditions,
        or one (a label, say) for all. `temperature` scales the prior's noise
        (T < 1: more typical samples; see `keras_vae.priors.temperature`); each
        prior's docstring says what it means for it, and with `latent_layers`
        it scales the noise of every layer.
        """
        condition = check_sample_condition(self, num, condition)
        prior_seed, likelihood_seed = tf.unstack(tf.random.split(self.stateless_seed(seed)))
        z = tempered_sample(self.prior_distribution(), num, temperature, prior_seed)
        parameters = self.likelihood_parameters(z, condition)
        if mean:
            return self.likelihood.mean(parameters)
        return self.likelihood.distribution(parameters).sample(seed=likelihood_seed)

    # === Training ===

    def _step_terms(self, x, training=False):
        if training:  # the training objective, with the gradient of the estimator
            return self.estimator.loss(self, x)
        iwae = self.objective == "iwae"
        terms = self.terms(x, self.num_samples, log_weights=iwae)
        loss = -objectives.iwae_bound(terms.pop("log_weights")) if iwae else -terms["elbo"]
        return loss, terms  # (batch,) each

    def _update_metrics(self, loss, terms, sample_weight=None):
        # As Keras reports a weighted loss: the mean of weight * loss; the other
        # metrics are weighted means, as Keras's `weighted_metrics`.
        if sample_weight is not None:
            sample_weight = tf.cast(sample_weight, loss.dtype)
        weighted_loss = loss if sample_weight is None else loss * sample_weight
        self.loss_tracker.update_state(weighted_loss)
        for tracker, name in (
            (self.elbo_tracker, "elbo"),
            (self.kl_tracker, "kl"),
            (self.reconstruction_tracker, "reconstruction"),
        ):
            tracker.update_state(terms[name], sample_weight=sample_weight)
        return self.metric_logs()

    def metric_logs(self):
        """The metrics' results so far, as `train_step` and `test_step` return them."""
        # Under multi-worker training Keras 3 cannot reduce scalar logs; see `reducible_logs`.
        return distribute.reducible_logs({metric.name: metric.result() for metric in self.metrics})

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x = self.join_inputs(x, y)  # y is the condition, or nothing for p(x) alone: see fit.
        with tf.GradientTape() as tape:
            loss, terms = self._step_terms(x, training=True)
            # The optimizer sums gradients over replicas: each contributes its share of
            # the global-batch mean, so the update does not depend on the replica count.
            scaled_loss = distribute.global_batch_mean(loss, sample_weight)
            # Under mixed_float16 the optimizer is a LossScaleOptimizer: float16 gradients
            # would underflow unscaled. It unscales them in `apply`.
            scaled_loss = self.optimizer.scale_loss(scaled_loss)
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._update_metrics(loss, terms, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        return self._update_metrics(*self._step_terms(self.join_inputs(x, y)), sample_weight)

    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        metrics=None,
        jit_compile="auto",
        steps_per_execution="auto",
        **kwargs,
    ):
        """Keras's `compile`; `"auto"` turns XLA on for CPUs too, and runs steps in blocks.

        Keras's "auto" leaves XLA off on CPU-only machines; the AEVB MNIST step
        trains about 1.2x (batch 100) and 1.5x (batch 1000) faster with it on a
        2-core Xeon (`tools/benchmark.py`, contender `keras_vae_no_xla`). So here
        "auto" means XLA except under a `tf.distribute` strategy of several
        replicas (XLA cannot reach replicated variables on other devices); a
        one-replica strategy keeps it, so it trains as fast as none. Keras still
        falls back, with a warning, where XLA is unsupported (op determinism).

        With XLA, `steps_per_execution` runs that many steps per call in one
        XLA computation (`keras_vae.fused_steps`), and `"auto"` picks 32, or
        the largest divisor of `fit`'s `steps_per_epoch` not above it; without
        XLA, Keras's own loop runs them and "auto" means 1. As with Keras's
        `steps_per_execution`, batch-level callbacks then run once per block.
        """
        check_compile_arguments(
            loss=loss,
            metrics=metrics,
            loss_weights=kwargs.get("loss_weights"),
            weighted_metrics=kwargs.get("weighted_metrics"),
        )
        if steps_per_execution != "auto":
            check_positive_int("steps_per_execution", steps_per_execution)
        if jit_compile == "auto":
            strategy = self._distribute_strategy
            jit_compile = strategy is None or strategy.num_replicas_in_sync == 1
        super().compile(
            optimizer=optimizer,
            jit_compile=jit_compile,
            steps_per_execution=1 if steps_per_execution == "auto" else steps_per_execution,
            **kwargs,
        )
        self.auto_steps = steps_per_execution == "auto"
        self._resident_data = None
        self._compile_config.config["steps_per_execution"] = steps_per_execution
        self._block_functions = {}

    def make_train_function(self, force=False):
        return self._make_block_function("train", self.train_step, force)

    def make_test_function(self, force=False):
        return self._make_block_function("test", self.test_step, force)

    def _make_block_function(self, kind, step_function, force):
        # Keras's function, unless steps run in XLA blocks; cached per block size.
        steps = self.steps_per_execution
        if steps == 1 or not fused_steps.fuses(self):
            super_method = getattr(super(), f"make_{kind}_function")
            if getattr(self, f"_{kind}_steps", None) != 1:
                force = True
            setattr(self, f"_{kind}_steps", 1)
            return super_method(force=force)
        if force or (kind, steps) not in self._block_functions:
            self._block_functions[kind, steps] = fused_steps.fused_function(
                self, step_function, steps, self.metric_logs, resident=kind == "train"
            )
        setattr(self, f"_{kind}_steps", steps)
        setattr(self, f"{kind}_function", self._block_functions[kind, steps])
        return getattr(self, f"{kind}_function")

    @contextlib.contextmanager
    def _steps_per_execution_for(self, steps):
        # Under "auto", the block size for a run of `steps` steps per epoch (None: until
        # the data ends); Keras's loops read `steps_per_execution` when they start.
        kept = self.steps_per_execution
        if getattr(self, "auto_steps", False):
            self.steps_per_execution = fused_steps.auto_steps_per_execution(self, steps)
        try:
            yield
        finally:
            self.steps_per_execution = kept

    def compile_from_config(self, config):
        # Keras skips this for a model whose `compile` is overridden; ours only adds checks.
        self.compile(**deserialize(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)  # Restored weights need its slots.

    def fit(self, x=None, y=None, *args, sample_weight=None, class_weight=None, **kwargs):
        """Keras's `fit`, for data x alone, weighted per example by `sample_weight`.

        `x` is checked by `keras_vae.validation.check_data`; a `y` or
        `class_weight` raises `ValueError`, since this model has no targets,
        except that a conditional model takes its condition as `y` (or in x, a
        dict `{"x": x, "condition": c}`; datasets yield `(x, c)`).
        With `sample_weight`, the update follows the gradient of
        `sum(sample_weight * loss) / batch_size` and the logged `loss` is the mean
        of `sample_weight * loss`, as Keras reduces weighted losses; `elbo`,
        `reconstruction` and `kl` are weighted means.
        """
        x, y, sample_weight = check_fit_data(self, x, y, sample_weight, class_weight)
        validation_data = kwargs.get("validation_data")
        if validation_data is not None:
            kwargs["validation_data"] = check_fit_data(
                self, *keras.utils.unpack_x_y_sample_weight(validation_data)
            )
        with data_errors(), self._steps_per_execution_for(kwargs.get("steps_per_epoch")):
            if args:  # positional options: Keras's own data path
                return super().fit(x, y, *args, sample_weight=sample_weight, **kwargs)
            with fused_steps.resident_data(self, x, y, sample_weight, kwargs) as resident:
                x, y, sample_weight, kwargs = resident
                return super().fit(x, y, sample_weight=sample_weight, **kwargs)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras reduces the first distributed batch across replicas only to read its
        # shapes, which fails when the batch splits unevenly; see `first_local_batch`.
        if getattr(self, "_resident_data", None) is not None:  # the iterator yields indices
            data_batch = tuple(None if a is None else a[:2] for a in self._resident_data)
        elif iterator is not None and self._distribute_strategy is not None:
            data_batch = distribute.first_local_batch(iterator, self.distribute_strategy)
        if self.condition is not None and data_batch is not None:
            # Keras builds by calling the model on x alone; a conditional VAE's call takes
            # x with its condition, which is the batch's y.
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data_batch)
            data_batch = (self.join_inputs(x, y), None, sample_weight)
        return super()._maybe_symbolic_build(data_batch=data_batch)

    def evaluate(self, x=None, y=None, *args, sample_weight=None, **kwargs):
        """Keras's `evaluate`, for data x alone; `sample_weight` weights as in `fit`."""
        if not kwargs.get("_use_cached_eval_dataset"):  # Inside `fit`, checked there.
            x, y, sample_weight = check_fit_data(self, x, y, sample_weight)
        # Inside `fit`, Keras built the validation iterator with fit's block size.
        steps = self._steps_per_execution_for(kwargs.get("steps"))
        if kwargs.get("_use_cached_eval_dataset"):
            steps = contextlib.nullcontext()
        with data_errors(), steps:
            return super().evaluate(x, y, *args, sample_weight=sample_weight, **kwargs)

    # === Serialization ===

    def save(self, filepath, *args, **kwargs):
        check_finite_weights(self)
        return super().save(filepath, *args, **kwargs)

    def export(self, filepath, format="tf_saved_model", input_signature=None, **kwargs):
        check_finite_weights(self)
        if input_signature is None and self.built:
            # Keras infers it from a first call, which neither `fit` nor `build` makes.
            input_signature = [tf.TensorSpec((None, *self.data_shape), tf.float32)]
            if self.condition is not None:
                condition = tf.TensorSpec((None, *self.condition.shape), tf.float32)
                input_signature = [{"x": input_signature[0], "condition": condition}]
        return super().export(filepath, format=format, input_signature=input_signature, **kwargs)

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": serialize(self.encoder),
            "decoder": serialize(self.decoder),
            "latent_dim": self.latent_dim,
            "prior": serialize(self.prior),
            "posterior": serialize(self.posterior),
            "likelihood": serialize(self.likelihood),
            "beta": objectives.beta_value(self.beta),
            "num_samples": self.num_samples,
            "objective": self.objective,
            "seed": self.seed,
            "estimator": serialize(self.estimator),
            "free_bits": self.free_bits,
            "condition": serialize(self.condition),
            "latent_layers": [serialize(layer) for layer in self.latent_layers],
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in (
            "encoder",
            "decoder",
            "prior",
            "posterior",
            "likelihood",
            "estimator",
            "condition",
        ):
            if name in config:
                config[name] = deserialize(config[name])
        config["latent_layers"] = [deserialize(layer) for layer in config.get("latent_layers", ())]
        return cls(**config)
