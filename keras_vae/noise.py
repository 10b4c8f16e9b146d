"""The random-number algorithm for the reparameterization noise, per compiler.

TensorFlow's CPU kernels implement Philox only. XLA implements Philox and
ThreeFry, and on CPU its Philox is slow: profiling the AEVB MNIST training
step at batch 1000 on a 2-core Xeon (`python tools/profile_step.py
--batch-size 1000`), XLA's Philox fusion took 7.4 ms of the step's 28.7 ms of
op time (CPU time over both threads); with ThreeFry, random-number ops take
under 0.01 ms and the op time is 21.2 ms. (Wall-clock time per step moved less,
29.6 to 28.1 ms: the two threads overlap.) Noise drawn inside XLA-compiled
functions therefore uses ThreeFry; the same seed gives a different (equally
standard-normal) stream than outside XLA.
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
