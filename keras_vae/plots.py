"""Figures of a trained VAE, as PNG files.

Image grids are written pixel for pixel (each data pixel becomes a
`scale` x `scale` block), so a figure's size follows from the data:
an 8x8 grid of 28x28 images at scale 2 is 448x448 pixels.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

from keras_vae import files  # noqa: E402
from keras_vae.images import image_grid, interleave, to_images  # noqa: E402

__all__ = [
    "gradient_variance",
    "latents",
    "latents_figure",
    "manifold",
    "reconstructions",
    "samples",
    "save_grid",
    "traversals",
]


def save_grid(images, path, columns=None, scale=2):
    """Writes `(n, h, w, c)` images in [0, 1] as one PNG grid."""
    grid = image_grid(images, columns)
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    with files.atomic_path(path) as partial:
        if grid.shape[-1] == 1:
            plt.imsave(partial, grid[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
        else:
            plt.imsave(partial, grid)


def samples(vae, path, num=64, seed=0, mean=True, temperature=1.0):
    """A grid of `num` generated examples (means of p(x|z) unless `mean=False`).

    A VAE conditioned on class labels gets one row per class, of
    `num // num_classes` samples (at least one) of p(x|z, c).
    """
    condition, columns = None, None
    if vae.condition is not None:
        num_classes = getattr(vae.condition, "num_classes", None)
        if num_classes is None:
            raise ValueError(
                "Expected a VAE conditioned on class labels (`conditions.OneHot`) for a grid of "
                f"samples per class. Received: condition {type(vae.condition).__name__}"
            )
        columns = max(1, num // num_classes)
        condition = np.repeat(np.arange(num_classes), columns)  # row c: class c
        num = len(condition)
    generated = vae.sample(num, seed=seed, mean=mean, condition=condition, temperature=temperature)
    save_grid(to_images(generated, vae.data_shape), path, columns=columns)


def reconstructions(vae, x, path):
    """Each example beside its reconstruction, 4 pairs per row.

    `x` is `{"x": x, "condition": c}` for a conditional VAE.
    """
    originals = to_images(vae.split_inputs(x)[0], vae.data_shape)
    rebuilt = to_images(vae.reconstruct(x), vae.data_shape)
    save_grid(interleave(originals, rebuilt), path, columns=8)


def manifold(vae, path, size=20):
    """The decoded 2-D latent space on a grid of standard-normal quantiles."""
    if vae.latent_dim != 2:
        raise ValueError(
            "Expected a model with latent_dim=2 for the manifold plot. "
            f"Received: latent_dim={vae.latent_dim}; use --kind traversals instead."
        )
    quantiles = tfp.distributions.Normal(0.0, 1.0).quantile(np.linspace(0.05, 0.95, size))
    grid = np.stack(np.meshgrid(quantiles, quantiles[::-1]), axis=-1).reshape(-1, 2)
    means = vae.decode_mean(tf.constant(grid, tf.float32))
    save_grid(to_images(means, vae.data_shape), path, columns=size)


def traversals(vae, x, path, num_dims=10, steps=11, extent=3.0):
    """One row per latent dimension: decode the first example's posterior mean
    with that dimension swept over [-extent, extent]."""
    loc = np.asarray(vae.posterior_mean(x[:1]))[0]
    dims = min(num_dims, vae.latent_dim)
    z = np.repeat(loc[None, None], dims, 0).repeat(steps, 1)  # (dims, steps, latent_dim)
    for dim in range(dims):
        z[dim, :, dim] = np.linspace(-extent, extent, steps)
    means = vae.decode_mean(tf.constant(z, tf.float32))
    images = to_images(np.reshape(means, (dims * steps, *vae.data_shape)), vae.data_shape)
    save_grid(images, path, columns=steps)


def latents(vae, x, labels, path, class_names=None):
    """Posterior means of `x`, projected on their two principal axes, colored by label.

    The legend names each class by `class_names[label]` when given (TFDS's
    `features["label"].names`, see `keras_vae.data.label_names`), else by number.
    """
    figure = latents_figure(vae, x, labels, class_names)
    with files.atomic_path(path) as partial:
        figure.savefig(partial)
    plt.close(figure)


def latents_figure(vae, x, labels, class_names=None):
    """The matplotlib figure `latents` writes."""
    loc = vae.embed(x, batch_size=500)
    centered = loc - loc.mean(axis=0)
    if loc.shape[1] > 2:
        _, _, axes = np.linalg.svd(centered, full_matrices=False)
        centered = centered @ axes[:2].T
    figure, axis = plt.subplots(figsize=(6, 6), dpi=100)
    labels = np.asarray(labels)
    colors = plt.get_cmap("tab10")
    for index, label in enumerate(np.unique(labels)):
        name = str(label) if class_names is None else class_names[int(label)]
        chosen = labels == label
        color = colors(index % colors.N)
        axis.scatter(centered[chosen, 0], centered[chosen, 1], color=color, s=4, label=name)
    axis.legend(title="label", loc="best", fontsize="small", markerscale=3)
    axis.set_xlabel("principal axis 1" if loc.shape[1] > 2 else "z_1")
    axis.set_ylabel("principal axis 2" if loc.shape[1] > 2 else "z_2")
    return figure


def gradient_variance(statistics, path, title=None):
    """Bars of each estimator's gradient variance and SNR per parameter group, log scale.

    Args:
        statistics: What `keras_vae.diagnostics.gradient_variance` returns.
        path: The PNG to write.
        title: The figure's title.
    """
    labels = list(statistics)
    groups = list(next(iter(statistics.values())))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    width = 0.8 / len(labels)
    for index, label in enumerate(labels):
        summaries = [statistics[label][group].summary() for group in groups]
        positions = np.arange(len(groups)) + (index - (len(labels) - 1) / 2) * width
        for axis, key in zip(axes, ("total_variance", "mean_snr"), strict=True):
            axis.bar(positions, [summary[key] for summary in summaries], width, label=label)
    for axis, name in zip(
        axes, ("sum of gradient variances", "mean SNR |mean| / std"), strict=True
    ):
        axis.set_yscale("log")
        axis.set_xticks(np.arange(len(groups)), groups)
        axis.set_ylabel(name)
    axes[0].legend(fontsize="small")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    with files.atomic_path(path) as partial:
        figure.savefig(partial, format="png")
    plt.close(figure)
