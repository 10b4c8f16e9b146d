"""Named model and training settings from the literature.

A preset is a few lines: the dataset and preprocessing of its protocol, the
training settings, and a function that builds the model. Model options the
command line may override (`latent_dim`, `objective`, `num_samples`, `seed`, ...) are
passed on; a builder's `latent_dim` argument defaults to the preset's.
"""

import dataclasses
from collections.abc import Callable

# The package loads TensorFlow on first use, here when a model is built, not on import: the
# command line lists the presets without it.
import keras_vae as kv

__all__ = ["PRESETS", "Preset", "get_preset"]


@dataclasses.dataclass(frozen=True)
class Preset:
    """A model builder and the training settings it was designed with.

    Example:

    >>> vae = get_preset("aevb-mnist").build_model(objective="elbo", num_samples=1)
    >>> vae.latent_dim
    20
    """

    name: str
    description: str
    dataset: str
    preprocessing: str
    epochs: int
    batch_size: int
    learning_rate: float
    build_model: Callable[..., "kv.VAE"]
    condition: str = "none"  # "label": a conditional VAE of x given the dataset's label


PRESETS = {}


def preset(
    name, dataset, preprocessing, epochs, batch_size=100, learning_rate=1e-3, condition="none"
):
    """Registers a model builder as a preset; its docstring is the description."""

    def register(build_model):
        PRESETS[name] = Preset(
            name,
            build_model.__doc__.strip(),
            dataset,
            preprocessing,
            epochs,
            batch_size,
            learning_rate,
            build_model,
            condition,
        )
        return build_model

    return register


def tanh_mlp(*hidden_units):
    return kv.networks.MLP(list(hidden_units), "tanh")


def get_preset(name):
    """The preset called `name`, or a `ValueError` listing the known ones."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}. Expected one of: {', '.join(PRESETS)}.")
    return PRESETS[name]


@preset("aevb-mnist", dataset="mnist", preprocessing="dynamic", epochs=20)
def aevb_mnist(latent_dim=20, **options):
    """Kingma & Welling (2014): MLP encoder and decoder of 500 tanh units, 20 latents, Bernoulli."""
    return kv.VAE(tanh_mlp(500), tanh_mlp(500), latent_dim, **options)


@preset("iaf-mnist", dataset="mnist", preprocessing="dynamic", epochs=20)
def iaf_mnist(latent_dim=20, **options):
    """aevb-mnist with an inverse autoregressive flow posterior (Kingma et al., 2016): 2 steps."""
    posterior = kv.posteriors.InverseAutoregressiveFlow(
        num_flows=2, hidden_units=[200, 200], context_units=50
    )
    return kv.VAE(tanh_mlp(500), tanh_mlp(500), latent_dim, posterior=posterior, **options)


@preset("iwae-mnist", dataset="mnist", preprocessing="dynamic", epochs=50)
def iwae_mnist(latent_dim=50, **options):
    """Burda et al. (2016), one stochastic layer: two tanh layers of 200, 50 latents, Bernoulli.

    Add `--objective iwae --num-samples 50` for the IWAE column of their Table 1.
    """
    return kv.VAE(tanh_mlp(200, 200), tanh_mlp(200, 200), latent_dim, **options)


@preset("iwae2-mnist", dataset="mnist", preprocessing="dynamic", epochs=50)
def iwae2_mnist(latent_dim=100, **options):
    """Burda et al. (2016), two stochastic layers: 784-200-200-100 for z1, 100-100-50 for z2.

    Tanh layers; p(z2) p(z1|z2) p(x|z1) mirrors q(z1|x) q(z2|z1). Add
    `--objective iwae --num-samples 50` for the IWAE column of their Table 1.
    """
    return kv.VAE(
        tanh_mlp(200, 200),
        tanh_mlp(200, 200),
        latent_dim,
        latent_layers=[kv.LatentLayer(50, tanh_mlp(100, 100), tanh_mlp(100, 100))],
        **options,
    )


@preset("conv-mnist", dataset="mnist", preprocessing="dynamic", epochs=20)
def conv_mnist(latent_dim=16, **options):
    """Convolutional encoder and decoder, 16 latents, Bernoulli, on binarized MNIST."""
    return kv.VAE(
        kv.networks.ConvEncoder(), kv.networks.ConvDecoder((28, 28)), latent_dim, **options
    )


@preset("conv-fashion-mnist", dataset="fashion_mnist", preprocessing="continuous", epochs=20)
def conv_fashion_mnist(latent_dim=16, **options):
    """Convolutional networks, 16 latents, continuous Bernoulli on [0, 1] Fashion-MNIST."""
    return kv.VAE(
        kv.networks.ConvEncoder(),
        kv.networks.ConvDecoder((28, 28)),
        latent_dim,
        likelihood=kv.likelihoods.ContinuousBernoulli(),
        **options,
    )


@preset("vamp-mnist", dataset="mnist", preprocessing="dynamic", epochs=50)
def vamp_mnist(latent_dim=40, **options):
    """Tomczak & Welling (2018): the VampPrior with 500 pseudo-inputs, MLPs of 300, 40 latents."""
    return kv.VAE(
        tanh_mlp(300, 300),
        tanh_mlp(300, 300),
        latent_dim,
        prior=kv.priors.VampPrior(500),
        **options,
    )


@preset("cvae-mnist", dataset="mnist", preprocessing="dynamic", epochs=20, condition="label")
def cvae_mnist(latent_dim=20, **options):
    """Sohn et al. (2015): AEVB's networks (500 tanh units, 20 latents) conditioned on the digit.

    `keras-vae sample` writes one row of samples per digit.
    """
    options.setdefault("condition", kv.conditions.OneHot(10))
    return kv.VAE(tanh_mlp(500), tanh_mlp(500), latent_dim, **options)


@preset("dlm-fashion-mnist", dataset="fashion_mnist", preprocessing="8bit", epochs=20)
def dlm_fashion_mnist(latent_dim=16, **options):
    """Convolutional networks, 16 latents, a mixture of 5 discretized logistics per 8-bit pixel.

    Salimans et al. (2017)'s likelihood on the raw pixels 0..255 of Fashion-MNIST, so that
    `keras-vae evaluate` reports log p(x) in bits per dimension. The encoder sees the pixels
    rescaled to [-1, 1].
    """
    import keras

    encoder = keras.Sequential(
        [keras.layers.Rescaling(1 / 127.5, offset=-1.0), kv.networks.ConvEncoder()]
    )
    return kv.VAE(
        encoder,
        kv.networks.ConvDecoder((28, 28)),
        latent_dim,
        likelihood=kv.likelihoods.DiscretizedLogisticMixture(num_components=5),
        **options,
    )
