"""Serialization of every family, network and the full model."""

import keras
import numpy as np
import pytest
from helpers import run_model_saving_test, run_serialization_test

import keras_vae as kv

FAMILIES = {
    "standard_normal": (kv.priors.StandardNormal, {}),
    "mixture_of_normals": (kv.priors.MixtureOfNormals, {"num_components": 3, "min_scale": 0.01}),
    "vamp_prior": (
        kv.priors.VampPrior,
        {"num_components": 4, "pseudo_input_mean": 0.2, "pseudo_input_stddev": 0.03},
    ),
    "diagonal_normal": (kv.posteriors.DiagonalNormal, {"min_scale": 0.01}),
    "full_covariance_normal": (kv.posteriors.FullCovarianceNormal, {"min_scale": 0.01}),
    "inverse_autoregressive_flow": (
        kv.posteriors.InverseAutoregressiveFlow,
        {"num_flows": 3, "hidden_units": [6, 5], "context_units": 0, "activation": "tanh"},
    ),
    "bernoulli": (kv.likelihoods.Bernoulli, {}),
    "continuous_bernoulli": (kv.likelihoods.ContinuousBernoulli, {}),
    "discretized_logistic_mixture": (
        kv.likelihoods.DiscretizedLogisticMixture,
        {"num_components": 3, "min_scale": 0.01},
    ),
    "normal_predicted": (kv.likelihoods.Normal, {"scale": "predicted", "min_scale": 0.01}),
    "normal_learned": (kv.likelihoods.Normal, {"scale": "learned", "min_scale": 0.01}),
    "normal_fixed": (kv.likelihoods.Normal, {"scale": 0.5, "min_scale": 0.0}),
    "made": (
        kv.networks.MADE,
        {"hidden_units": [8, 4], "params": 3, "activation": "tanh", "reverse": True},
    ),
    "mlp": (kv.networks.MLP, {"hidden_units": [8, 4], "activation": "tanh"}),
    "conv_encoder": (
        kv.networks.ConvEncoder,
        {"filters": [4, 8], "dense_units": 16, "activation": "elu"},
    ),
    "conv_decoder": (
        kv.networks.ConvDecoder,
        {"image_size": (8, 12), "filters": [8, 4], "activation": "elu"},
    ),
}


@pytest.mark.parametrize("name", FAMILIES)
def test_config_round_trip(name):
    cls, init_kwargs = FAMILIES[name]
    revived = run_serialization_test(cls(**init_kwargs), init_kwargs)
    for argument, value in init_kwargs.items():
        assert getattr(revived, argument) == value


def test_model_config_round_trip():
    vae = kv.VAE(
        kv.networks.MLP([8]),
        kv.networks.MLP([8]),
        latent_dim=3,
        prior=kv.priors.MixtureOfNormals(2),
        posterior=kv.posteriors.FullCovarianceNormal(),
        likelihood=kv.likelihoods.Normal(scale="learned"),
        beta=0.5,
        num_samples=2,
        seed=7,
    )
    config = vae.get_config()
    for name in ("latent_dim", "beta", "num_samples", "objective", "seed"):
        assert config[name] == getattr(vae, name)
    revived = kv.VAE.from_config(config)
    assert revived.get_config() == config
    assert isinstance(revived.prior, kv.priors.MixtureOfNormals)
    assert revived.prior.num_components == 2
    assert isinstance(revived.likelihood, kv.likelihoods.Normal)
    assert revived.likelihood.scale == "learned"


# Every prior, posterior and likelihood appears in at least one model (test_precision too).
MODELS = {
    "mixture_full_normal_learned": lambda: {
        "prior": kv.priors.MixtureOfNormals(3),
        "posterior": kv.posteriors.FullCovarianceNormal(),
        "likelihood": kv.likelihoods.Normal("learned"),
    },
    "vamp_diagonal_continuous_bernoulli": lambda: {
        "prior": kv.priors.VampPrior(4),
        "posterior": kv.posteriors.DiagonalNormal(),
        "likelihood": kv.likelihoods.ContinuousBernoulli(),
    },
    "standard_full_normal_fixed": lambda: {
        "prior": kv.priors.StandardNormal(),
        "posterior": kv.posteriors.FullCovarianceNormal(),
        "likelihood": kv.likelihoods.Normal(0.3),
    },
    "flow_bernoulli": lambda: {
        "posterior": kv.posteriors.InverseAutoregressiveFlow(hidden_units=[4], context_units=3),
    },
    "mixture_discretized_logistic": lambda: {  # binary x: two of the 256 levels
        "prior": kv.priors.MixtureOfNormals(2),
        "likelihood": kv.likelihoods.DiscretizedLogisticMixture(2),
    },
    "iwae_normal_predicted": lambda: {
        "likelihood": kv.likelihoods.Normal("predicted"),
        "objective": "iwae",
        "num_samples": 3,
    },
}


@pytest.mark.parametrize("name", MODELS)
def test_model_saving_mlp(name, tmp_path):
    keras.utils.set_random_seed(1)
    x = (np.random.rand(16, 3, 2) < 0.5).astype("float32")
    vae = kv.VAE(
        kv.networks.MLP([8], "tanh"), kv.networks.MLP([8], "tanh"), 2, seed=3, **MODELS[name]()
    )
    vae.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)  # tiny: XLA costs more
    vae.fit(x, batch_size=8, epochs=1, verbose=0)
    loaded = run_model_saving_test(vae, x, tmp_path / "model.keras")
    for family in ("prior", "posterior", "likelihood"):
        assert type(getattr(loaded, family)) is type(getattr(vae, family))


def test_model_saving_conv(tmp_path):
    keras.utils.set_random_seed(2)
    x = (np.random.rand(8, 8, 12, 1) < 0.5).astype("float32")
    vae = kv.VAE(
        kv.networks.ConvEncoder(filters=[4, 4], dense_units=8),
        kv.networks.ConvDecoder(image_size=(8, 12), filters=[4, 4]),
        latent_dim=2,
        seed=3,
    )
    vae.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    vae.fit(x, batch_size=4, epochs=1, verbose=0)
    loaded = run_model_saving_test(vae, x, tmp_path / "model.keras")
    assert isinstance(loaded.encoder, kv.networks.ConvEncoder)
    assert isinstance(loaded.decoder, kv.networks.ConvDecoder)
    assert loaded.reconstruct(x).shape == x.shape
