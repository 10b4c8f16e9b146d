"""The functions a deployed VAE serves: plain tensors in, dicts of plain tensors out.

Every signature takes its noise as an input, so exported graphs hold no
random op and give the same answer for the same request. The batch
dimension is dynamic. Inputs -> outputs:

    serving_default  x (batch, *data_shape)      -> reconstruction
    encode           x                           -> parameters of q(z|x): loc, scale | scale_tril
    decode           z (batch, latent_dim)       -> mean of p(x|z), and its parameters
    sample           eps (batch, latent_size)    -> z, and decode's outputs at z
                     [u (batch,), mixture priors]
    elbo             x, eps (batch, num_samples, latent_size)
                                                 -> elbo, reconstruction, kl  (batch,)

A conditional VAE's signatures each take one more input, last: `condition`,
float32 `(batch, *condition.shape)` (a class label as a whole number, for
`OneHot`), which x, z and eps are taken with.

`eps` is standard-normal noise. `u`, uniform on [0, 1), is an input only
for mixture priors: it picks component k by inverse CDF over the mixture
weights, k = #{j < K - 1 : cdf_j <= u}, and then z = loc_k + scale_k @ eps.
For a Gaussian prior z = loc + scale @ eps (z = eps for the standard
normal). `elbo`'s noise is batch-major so that every input shares the
batch dimension (TF Serving's row format); the terms average over its
`num_samples` draws, as `VAE.terms` does.

With `latent_layers`, z = concat(z_1, ..., z_L) has `latent_size` entries:
`encode` gives q(z_1|x)'s parameters, `decode` takes z_1 (or all of z), and
`sample` maps `eps` through p(z)'s chain of Gaussians, z_L first.

Each signature checks its inputs first (see `keras_vae.export.inputs`): the
declared shape, one batch size, no empty sample axis, finite values, `x`
within the likelihood's support and `u` within [0, 1]. Any other input is
refused with `InvalidArgumentError`.
"""

import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.choices import SIGNATURES
from keras_vae.export.inputs import CONDITION, check_in_graph
from keras_vae.precision import in_float32

__all__ = ["SIGNATURES", "Signature", "prior_needs_uniform", "signatures"]

tfd = tfp.distributions


class Signature:
    """One exported function of a VAE and the specs of its named inputs.

    Args:
        name: The signature key.
        function: A function of the named inputs, as positional arguments in
            the order of `input_specs`, returning a dict of tensors. It
            checks its inputs before using them.
        input_specs: A list of named `tf.TensorSpec`s with a dynamic batch.
    """

    def __init__(self, name, function, input_specs):
        self.name = name
        self.function = function
        self.input_specs = list(input_specs)

    def __repr__(self):
        inputs = ", ".join(f"{spec.name}: {tuple(spec.shape)}" for spec in self.input_specs)
        return f"Signature({self.name}({inputs}))"


def signatures(model, names=SIGNATURES):
    """The named signatures of a built `VAE`, as `{name: Signature}`.

    Raises:
        ValueError: for an unknown name, or for `sample` with a prior that
            cannot be sampled from noise given as input.

    Example:

    >>> import keras_vae as kv
    >>> vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), latent_dim=2)
    >>> vae.build((None, 4))
    >>> signatures(vae, ["encode", "sample"])["sample"]
    Signature(sample(eps: (None, 2)))
    """
    unknown = [name for name in names if name not in SIGNATURES]
    if unknown:
        raise ValueError(f"Expected signature names among {SIGNATURES}. Received: {unknown}")
    data = tf.TensorSpec((None, *model.data_shape), tf.float32, name="x")
    latent = tf.TensorSpec((None, model.latent_dim), tf.float32, name="z")
    eps = tf.TensorSpec((None, model.latent_size), tf.float32, name="eps")
    eps_samples = tf.TensorSpec((None, None, model.latent_size), tf.float32, name="eps")
    # A conditional model's inputs end with the condition; the functions take it by name.
    conditions = []
    if model.condition is not None:
        shape = (None, *model.condition.shape)
        conditions = [tf.TensorSpec(shape, tf.float32, name=CONDITION)]

    def serving_default(x, condition=None):
        return {"reconstruction": model.reconstruct(model.join_inputs(x, condition))}

    def encode(x, condition=None):
        return dict(model.posterior_parameters(model.join_inputs(x, condition)))

    def decode(z, condition=None):
        parameters = model.likelihood_parameters(z, condition)
        return {"mean": model.likelihood.mean(parameters), **parameters}

    def sample(eps, u=None, condition=None):
        z = prior_reparameterize(model, eps, u)
        return {"z": z, **decode(z, condition)}

    def elbo(x, eps, condition=None):
        noise = tf.transpose(eps, (1, 0, 2))  # (num_samples, batch, latent_dim)
        return model.terms(model.join_inputs(x, condition), noise=noise)

    sample_specs = [eps]
    if "sample" in names:
        check_prior(model)
        if prior_needs_uniform(model):
            sample_specs.append(tf.TensorSpec((None,), tf.float32, name="u"))
    available = {
        "serving_default": Signature("serving_default", serving_default, [data, *conditions]),
        "encode": Signature("encode", encode, [data, *conditions]),
        "decode": Signature("decode", decode, [latent, *conditions]),
        "sample": Signature("sample", sample, [*sample_specs, *conditions]),
        "elbo": Signature("elbo", elbo, [data, eps_samples, *conditions]),
    }
    return {name: _checked(model, available[name]) for name in names}


def _checked(model, signature):
    # Traced in float32 under a mixed-precision policy too: see `precision.in_float32`.
    compute = in_float32(model, signature.function)
    support = model.likelihood.support
    condition = None if model.condition is None else model.condition.describe()
    names = [spec.name for spec in signature.input_specs]

    def function(*inputs):
        inputs = check_in_graph(signature.name, signature.input_specs, inputs, support, condition)
        return compute(**dict(zip(names, inputs, strict=True)))

    return Signature(signature.name, function, signature.input_specs)


def prior_needs_uniform(model):
    """Whether `sample` takes a uniform `u` to pick a mixture component."""
    return isinstance(model.prior_distribution(), tfd.MixtureSameFamily)


def check_prior(model):
    """Raises `ValueError` unless p(z) can be sampled as a function of input noise."""
    if model.latent_layers:  # a chain of Gaussians, whose bijector maps noise to z
        return
    prior = model.prior_distribution()
    gaussian = prior
    if isinstance(prior, tfd.MixtureSameFamily):
        gaussian = prior.components_distribution
    if not isinstance(gaussian, tfd.MultivariateNormalLinearOperator):
        raise ValueError(
            "Expected a prior that is Gaussian or a mixture of Gaussians, so that the `sample` "
            f"signature can take its noise as input. Received: {type(model.prior).__name__}, "
            f"a {type(prior).__name__}; export without the `sample` signature."
        )


def prior_reparameterize(model, eps, u=None):
    """z ~ p(z) as a function of standard-normal `eps` (and uniform `u` for mixtures)."""
    prior = model.prior_distribution()
    if model.latent_layers:  # ancestral sampling through the chain of Gaussians
        return prior.bijector.forward(eps)
    if not isinstance(prior, tfd.MixtureSameFamily):
        return prior.loc + prior.scale.matvec(eps)
    components = prior.components_distribution  # batch shape (K,)
    cdf = tf.cumsum(prior.mixture_distribution.probs_parameter())
    # Counting over cdf[:-1] keeps k < K even when rounding leaves cdf[-1] below u.
    index = tf.reduce_sum(tf.cast(cdf[:-1] <= u[:, None], tf.int32), axis=1)  # (batch,)
    one_hot = tf.one_hot(index, tf.shape(cdf)[0])  # (batch, K)
    # Every component's draw, then the chosen one: no gather over batched operators.
    draws = components.loc + components.scale.matvec(eps[:, None, :])  # (batch, K, latent_dim)
    return tf.reduce_sum(one_hot[..., None] * draws, axis=1)
