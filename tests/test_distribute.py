"""Strategies by name, worker roles, and data-parallel training under a 2-replica MirroredStrategy.

TensorFlow fixes its logical devices when it first uses them, and pytest has
long since used them by the time this module runs, so the two-replica
measurements run in a fresh interpreter: this file run as a script
(`python test_distribute.py`) splits the CPU into two devices, measures, and
prints JSON that the tests below check.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

DATA_DIM, LATENT_DIM = 12, 2
ESTIMATOR_OPTIONS = {
    "score_function": {},
    "stl": {},
    "dreg": {"objective": "iwae", "num_samples": 2},
}
# Float32 sums in a different order: a gradient summed over two half-batches
# differs from the whole-batch one by a few ulps of its terms (about 1e-7
# relative), far below one update, which is about 1e-2 here.
WEIGHT_TOLERANCE = 1e-6


# === Measurements (run in a subprocess) ===


def fixed_noise_vae_class():
    import keras_vae as kv

    class FixedNoiseVAE(kv.VAE):
        """Noise a fixed function of each example: the same whichever replica draws it."""

        def sample_posterior(self, x, num_samples=1, noise=None):
            if noise is None:
                projection = tf.random.stateless_normal(
                    (DATA_DIM, num_samples * self.latent_size), seed=(7, 8)
                )
                data = self.split_inputs(x)[0]  # x alone, for a conditional VAE too
                noise = tf.tanh(data @ projection) * 1.5  # (batch, num_samples * latent_dim)
                noise = tf.reshape(noise, (-1, num_samples, self.latent_size))
                noise = tf.transpose(noise, (1, 0, 2))  # (num_samples, batch, latent_size)
            return super().sample_posterior(x, num_samples, noise)

    return FixedNoiseVAE


def make_vae(strategy, weights=None, learning_rate=0.1, **options):
    import keras

    import keras_vae as kv

    if options.get("posterior") == "flow":  # a new layer for each model
        options["posterior"] = kv.posteriors.InverseAutoregressiveFlow(
            hidden_units=[4], context_units=3
        )
    if options.get("latent_layers") == "one":
        options["latent_layers"] = [
            kv.LatentLayer(2, kv.networks.MLP([4], "tanh"), kv.networks.MLP([4], "tanh"))
        ]
    with strategy.scope():
        vae = fixed_noise_vae_class()(
            kv.networks.MLP([16], "tanh"),
            kv.networks.MLP([16], "tanh"),
            LATENT_DIM,
            seed=3,
            **options,
        )
        vae.build((None, DATA_DIM))
        # SGD: the weight change is the learning rate times the gradient, nothing else.
        # Without XLA on one device too: XLA draws other stateless normals (the noise above).
        vae.compile(optimizer=keras.optimizers.SGD(learning_rate), jit_compile=False)
    if weights is not None:
        vae.set_weights(weights)
    return vae


def batches(x, batch_size):
    import keras_vae as kv

    return kv.distribute.shard_by_data(tf.data.Dataset.from_tensor_slices(x).batch(batch_size))


def max_difference(weights, other_weights):
    return max(float(np.max(np.abs(a - b))) for a, b in zip(weights, other_weights, strict=True))


def compare_step(strategies, initial, x, sample_weight=None, labels=None, **options):
    """One SGD step on the global batch `x` from weights `initial`, under each strategy."""
    updated = []
    data = x if labels is None else (x, labels)
    if sample_weight is not None:
        data = (x, labels, sample_weight)
    for strategy in strategies:
        vae = make_vae(strategy, initial, **options)
        vae.fit(batches(data, len(x)), epochs=1, verbose=0)
        updated.append(vae.get_weights())
    return {
        "max_weight_difference": max_difference(*updated),
        "max_update": max_difference(updated[0], initial),
        "weights": updated[0],
    }


def compare_evaluate(strategies, initial, x):
    """`evaluate` of `x` in batches of 32 from weights `initial`, under each strategy."""
    return [
        make_vae(strategy, initial).evaluate(batches(x, 32), verbose=0, return_dict=True)
        for strategy in strategies
    ]


def measure():
    import keras

    import keras_vae as kv

    mirrored = kv.distribute.get_strategy("mirrored", num_cpu_replicas=2)
    single = kv.distribute.get_strategy("default")
    keras.utils.set_random_seed(0)
    x = (np.random.default_rng(0).random((97, DATA_DIM)) < 0.4).astype("float32")
    initial = make_vae(single).get_weights()
    results = {"num_replicas": mirrored.num_replicas_in_sync}

    # One SGD step on the same global batch; 33 splits 17/16 and 1 leaves a replica empty.
    for size in (32, 33, 1):
        results[f"step_{size}"] = compare_step((single, mirrored), initial, x[:size])
        local = mirrored.experimental_distribute_dataset(batches(x[:size], size))
        sizes = [int(t.shape[0]) for t in mirrored.experimental_local_results(next(iter(local)))]
        results[f"step_{size}"]["replica_batch_sizes"] = sizes

    # The estimators' surrogate losses, and the score function's baselines, on two replicas.
    for estimator, options in ESTIMATOR_OPTIONS.items():
        options = {"estimator": estimator, **options}
        start = make_vae(single, **options).get_weights()
        results[f"step_{estimator}"] = compare_step((single, mirrored), start, x[:32], **options)

    # A flow posterior: each replica takes log q(z|x) from its own draws (a bijector cache).
    start = make_vae(single, posterior="flow").get_weights()
    results["step_flow"] = compare_step((single, mirrored), start, x[:33], posterior="flow")

    # Two stochastic layers: both chains of Gaussians on each replica's share, IWAE with k = 2
    # and DReG, whose held log q(z|x) runs the layers' networks on held weights.
    options = {"latent_layers": "one", "objective": "iwae", "num_samples": 2, "estimator": "dreg"}
    start = make_vae(single, **options).get_weights()
    results["step_two_layers"] = compare_step((single, mirrored), start, x[:33], **options)

    # Sample weights on a batch that splits 17/16: the weighted global-batch mean.
    sample_weight = np.random.default_rng(1).random(33).astype("float32") * 2
    weighted = compare_step((single, mirrored), initial, x[:33], sample_weight)
    weighted["change_from_unweighted"] = max_difference(
        weighted.pop("weights"), results["step_33"]["weights"]
    )
    results["weighted_step_33"] = weighted

    # A conditional VAE on a batch that splits 17/16: each replica gets its examples' labels.
    labels = np.arange(33) % 3
    start = make_vae(single, condition=3).get_weights()
    results["step_conditional"] = compare_step(
        (single, mirrored), start, x[:33], labels=labels, condition=3
    )
    for step in results.values():
        if isinstance(step, dict):
            step.pop("weights", None)

    # Metrics over 97 examples in batches of 32: the last batch holds 1.
    direct = make_vae(single, initial).terms(x)
    results["direct"] = {name: float(np.mean(direct[name])) for name in ("elbo", "kl")}
    results["evaluate_single"], results["evaluate_mirrored"] = compare_evaluate(
        (single, mirrored), initial, x
    )

    # The noise each replica draws, from the model's own generator.
    with mirrored.scope():
        vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), LATENT_DIM, seed=5)
        vae.build((None, DATA_DIM))
    noise = mirrored.run(vae.standard_normal, args=((1, 4, LATENT_DIM),))
    results["noise"] = [t.numpy().tolist() for t in mirrored.experimental_local_results(noise)]
    print("RESULTS " + json.dumps(results, default=float))


@pytest.fixture(scope="module")
def mirrored():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    process = subprocess.run(
        [sys.executable, __file__],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parent,
    )
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULTS ")]
    assert process.returncode == 0 and lines, process.stderr[-3000:]
    results = json.loads(lines[-1].removeprefix("RESULTS "))
    print(json.dumps(results, indent=1))
    return results


# === Two replicas against one ===


@pytest.mark.parametrize("size", [32, 33, 1])
def test_a_step_on_two_replicas_equals_one_on_one_device(mirrored, size):
    step = mirrored[f"step_{size}"]
    assert mirrored["num_replicas"] == 2
    # tf.distribute splits the global batch; the replicas' shares add up to it.
    assert sum(step["replica_batch_sizes"]) == size
    assert max(step["replica_batch_sizes"]) == (size + 1) // 2
    # Measured: 1.5e-8 (32), 1.5e-8 (33), 0 (1), for updates of 0.01 to 0.05.
    assert step["max_weight_difference"] < WEIGHT_TOLERANCE
    assert step["max_update"] > 1000 * WEIGHT_TOLERANCE


@pytest.mark.parametrize("estimator", ESTIMATOR_OPTIONS)
def test_each_estimator_steps_on_two_replicas_as_on_one_device(mirrored, estimator):
    step = mirrored[f"step_{estimator}"]
    # The weights include the score function's running average and baseline network.
    assert step["max_weight_difference"] < WEIGHT_TOLERANCE
    assert step["max_update"] > 1000 * WEIGHT_TOLERANCE


def test_a_flow_posterior_steps_on_two_replicas_as_on_one_device(mirrored):
    step = mirrored["step_flow"]
    assert step["max_weight_difference"] < WEIGHT_TOLERANCE
    assert step["max_update"] > 1000 * WEIGHT_TOLERANCE


def test_two_stochastic_layers_step_on_two_replicas_as_on_one_device(mirrored):
    step = mirrored["step_two_layers"]
    assert step["max_weight_difference"] < WEIGHT_TOLERANCE
    assert step["max_update"] > 1000 * WEIGHT_TOLERANCE


def test_a_weighted_step_on_two_replicas_equals_one_on_one_device(mirrored):
    step = mirrored["weighted_step_33"]
    assert step["max_weight_difference"] < WEIGHT_TOLERANCE
    assert step["change_from_unweighted"] > 100 * WEIGHT_TOLERANCE  # The weights count.


def test_a_conditional_step_on_two_replicas_equals_one_on_one_device(mirrored):
    step = mirrored["step_conditional"]
    assert step["max_weight_difference"] < WEIGHT_TOLERANCE
    assert step["max_update"] > 1000 * WEIGHT_TOLERANCE


def test_metrics_are_aggregated_over_replicas(mirrored):
    # The first replica alone saw 48 of the 97 examples: its mean would differ.
    for name in ("elbo", "kl"):
        expected = mirrored["direct"][name]
        assert mirrored["evaluate_single"][name] == pytest.approx(expected, rel=1e-5)
        assert mirrored["evaluate_mirrored"][name] == pytest.approx(expected, rel=1e-5)
    assert mirrored["evaluate_mirrored"]["loss"] == pytest.approx(-mirrored["direct"]["elbo"])


def test_replicas_draw_different_noise(mirrored):
    first, second = (np.array(noise) for noise in mirrored["noise"])
    assert first.shape == second.shape == (1, 4, LATENT_DIM)
    assert np.all(first != second)


# === In process: names, options and roles ===


def test_unknown_names_and_misplaced_options_are_rejected():
    import keras_vae as kv

    with pytest.raises(ValueError, match="Received: name='gpu'"):
        kv.distribute.get_strategy("gpu")
    with pytest.raises(ValueError, match="num_cpu_replicas=2"):
        kv.distribute.get_strategy("default", num_cpu_replicas=2)
    with pytest.raises(ValueError, match="num_cpu_replicas=0"):
        kv.distribute.get_strategy("mirrored", num_cpu_replicas=0)
    with pytest.raises(ValueError, match="`tpu` only"):
        kv.distribute.get_strategy("mirrored", tpu="local")


def test_multi_worker_needs_a_training_task_in_tf_config(monkeypatch):
    import keras_vae as kv

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        kv.distribute.get_strategy("multi_worker")
    cluster = {"chief": ["a:1"], "worker": ["b:1"], "evaluator": ["c:1"]}
    tf_config = {"cluster": cluster, "task": {"type": "evaluator", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    with pytest.raises(ValueError, match="'evaluator'"):
        kv.distribute.get_strategy("multi_worker")


def fake_multi_worker(monkeypatch, cluster, task_type, task_id):
    """A strategy whose cluster resolver reads TF_CONFIG, without joining a cluster."""
    import keras_vae as kv

    tf_config = {"cluster": cluster, "task": {"type": task_type, "index": task_id}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    monkeypatch.setattr(kv.distribute, "is_multi_worker", lambda strategy=None: True)
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return SimpleNamespace(cluster_resolver=resolver)


@pytest.mark.parametrize(
    "cluster, task, is_chief",
    [
        # Kubernetes operators: workers only, worker 0 is the chief.
        ({"worker": ["a:1", "b:1"]}, ("worker", 0), True),
        ({"worker": ["a:1", "b:1"]}, ("worker", 1), False),
        # Vertex AI: the first worker pool is the chief, worker 0 is not.
        ({"chief": ["a:1"], "worker": ["b:1", "c:1"]}, ("chief", 0), True),
        ({"chief": ["a:1"], "worker": ["b:1", "c:1"]}, ("worker", 0), False),
    ],
)
def test_the_chief_is_found_as_operators_and_vertex_ai_set_tf_config(
    monkeypatch, tmp_path, cluster, task, is_chief
):
    import keras_vae as kv
    from keras_vae.run_dir import RunDir

    worker = kv.distribute.worker_info(fake_multi_worker(monkeypatch, cluster, *task))
    assert worker == kv.distribute.WorkerInfo(*task, is_chief)
    # Every worker, the chief too, backs up to its own folder.
    assert worker.backup_dir(RunDir(tmp_path)) == tmp_path / f"backup-{task[0]}-{task[1]}"


def test_one_process_is_the_chief_and_backs_up_to_the_run_dir(tmp_path):
    import keras_vae as kv
    from keras_vae.run_dir import RunDir

    worker = kv.distribute.worker_info(kv.distribute.get_strategy("default"))
    assert worker.is_chief
    assert worker.backup_dir(RunDir(tmp_path)) == RunDir(tmp_path).backup


def test_datasets_are_sharded_by_element():
    import keras_vae as kv

    dataset = kv.distribute.shard_by_data(tf.data.Dataset.range(4))
    policy = dataset.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.DATA


def test_one_device_keeps_scalar_logs_and_the_plain_mean():
    import keras_vae as kv

    logs = {"loss": tf.constant(2.0)}
    assert kv.distribute.reducible_logs(logs) is logs
    mean = kv.distribute.global_batch_mean(tf.constant([1.0, 2.0, 6.0]))
    assert float(mean) == pytest.approx(3.0)
    assert float(kv.distribute.global_batch_mean(tf.zeros((0,)))) == 0.0
    # Keras's "sum_over_batch_size": weighted sum over the batch size, not over the weights.
    weighted = kv.distribute.global_batch_mean(tf.constant([1.0, 2.0, 6.0]), [1.0, 0.0, 2.0])
    assert float(weighted) == pytest.approx(13.0 / 3.0)


def test_jit_compile_is_refused_with_a_distributed_strategy(tmp_path, capsys):
    from keras_vae.cli import main

    argv = ["train", "--run-dir", str(tmp_path), "--strategy", "mirrored", "--jit-compile"]
    assert main(argv) == 2
    assert "--jit-compile works with --strategy default only" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


if __name__ == "__main__":
    measure()
