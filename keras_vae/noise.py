"""The random-number algorithm for the reparameterization noise, per compiler.

TensorFlow's CPU kernels implement Philox only. XLA implements Philox and
ThreeFry, and on CPU its Philox costs far more: on the AEVB MNIST step
(batch 1000, 20 latents, 2-core Xeon) drawing the noise with Philox took
about 17% of the step's CPU time, ThreeFry about 5%
(`python tools/benchmark.py --contenders keras_vae keras_vae_philox`).
Noise drawn inside XLA-compiled functions therefore uses ThreeFry; the same
seed gives a different (equally standard-normal) stream than outside XLA.
"""

import tensorflow as tf

try:  # TensorFlow's own test for an enclosing XLA context; private, so checked on upgrades.
    from tensorflow.python.ops.control_flow_util import GraphOrParentsInXlaContext
except ImportError:  # pragma: no cover - a TensorFlow without it keeps Philox everywhere
    GraphOrParentsInXlaContext = None

__all__ = ["noise_algorithm"]


def noise_algorithm():
    """`"threefry"` when tracing inside an XLA-compiled function, else `"philox"`.

    Example:

    >>> noise_algorithm()
    'philox'
    >>> seen = []
    >>> _ = tf.function(lambda: seen.append(noise_algorithm()) or 0.0, jit_compile=True)()
    >>> seen
    ['threefry']
    """
    if GraphOrParentsInXlaContext is None or tf.executing_eagerly():
        return "philox"
    in_xla = GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
    return "threefry" if in_xla else "philox"
