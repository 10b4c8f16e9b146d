"""`trainable=False` on any network or family survives `.keras` round trips and freezes it."""

import keras
import numpy as np
import pytest

import keras_vae as kv

COMPONENTS = ("encoder", "decoder", "prior", "posterior", "likelihood")

# Every prior, posterior, likelihood and network appears in at least one model.
MODELS = {
    "mlp_mixture_full_normal_learned": lambda: dict(
        encoder=kv.networks.MLP([8], "tanh"),
        decoder=kv.networks.MLP([8], "tanh"),
        prior=kv.priors.MixtureOfNormals(3),
        posterior=kv.posteriors.FullCovarianceNormal(),
        likelihood=kv.likelihoods.Normal("learned"),
    ),
    "mlp_vamp_diagonal_continuous_bernoulli": lambda: dict(
        encoder=kv.networks.MLP([8], "tanh"),
        decoder=kv.networks.MLP([8], "tanh"),
        prior=kv.priors.VampPrior(4),
        posterior=kv.posteriors.DiagonalNormal(),
        likelihood=kv.likelihoods.ContinuousBernoulli(),
    ),
    "conv_standard_bernoulli_normal_predicted": lambda: dict(
        encoder=kv.networks.ConvEncoder([4, 4], dense_units=8),
        decoder=kv.networks.ConvDecoder((8, 4), [4, 4]),
        prior=kv.priors.StandardNormal(),
        likelihood=kv.likelihoods.Normal("predicted"),
    ),
    "mlp_bernoulli": lambda: dict(
        encoder=kv.networks.MLP([8], "tanh"),
        decoder=kv.networks.MLP([8], "tanh"),
        likelihood=kv.likelihoods.Bernoulli(),
    ),
}

# Frozen together in one model, each component once in each model.
FROZEN = {"inference": ("encoder", "posterior", "prior"), "generative": ("decoder", "likelihood")}


def _paths(variables):
    return {variable.path for variable in variables}


@pytest.mark.parametrize("frozen", FROZEN)
@pytest.mark.parametrize("model", MODELS)
def test_frozen_components_stay_frozen_after_reload(model, frozen, tmp_path):
    keras.utils.set_random_seed(0)
    x = (np.random.rand(8, 8, 4, 1) < 0.5).astype("float32")
    components = MODELS[model]()
    names = FROZEN[frozen]
    # Frozen through the constructor before build, as a `.keras` file restores it.
    first, *others = names
    components[first] = type(components[first]).from_config(
        {**components[first].get_config(), "trainable": False}
    )
    vae = kv.VAE(latent_dim=2, **components)
    vae.build(x.shape)
    for name in others:  # and after build, as a user freezes a part of a trained model
        getattr(vae, name).trainable = False
    vae.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")

    for original in (vae, loaded):
        trainable = _paths(original.trainable_variables)
        for name in COMPONENTS:
            component = getattr(original, name)
            assert component.trainable == (name not in names), name
            if name in names:
                assert not trainable & _paths(component.weights), name
    before = {variable.path: np.array(variable) for variable in loaded.weights}
    loaded.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)  # one step: no tracing
    loaded.fit(x, batch_size=8, epochs=1, verbose=0)
    for name in COMPONENTS:
        for variable in getattr(loaded, name).weights:
            changed = not np.array_equal(before[variable.path], np.array(variable))
            assert changed == (name not in names), variable.path
