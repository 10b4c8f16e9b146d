"""Keeping `trainable=False` on layers whose sublayers are built late."""

import keras

__all__ = ["freeze_if_not_trainable"]


def freeze_if_not_trainable(layer):
    """Passes `layer.trainable=False` on to the sublayers and weights it has built since.

    Keras applies `trainable=False` to the sublayers and weights a layer has
    when the flag is set. A layer whose sublayers build their weights later
    (in `build`, or when a `.keras` file restores the flag through the
    constructor) would otherwise train them anyway. Call it at the end of
    `build`.

    Example:

    >>> import keras, keras_vae as kv
    >>> mlp = kv.networks.MLP([4], trainable=False)
    >>> mlp.build((None, 3))
    >>> [v.trainable for v in mlp.dense_layers[0].weights]
    [False, False]
    """
    if not layer.trainable:
        # Through the property: on the TensorFlow backend `layer.trainable = False`
        # returns early when the attribute already is False.
        keras.layers.Layer.trainable.fset(layer, False)
