"""q(z|x) and p(z) of a model with several latent layers, over z = concat(z_1, ..., z_L).

Both are Markov chains of Gaussians, each link an affine map of its own
standard-normal noise given the neighbouring layer:

    q: z_1 = f_1(eps_1; x),  z_i = f_i(eps_i; z_{i-1})         (inference order 1..L)
    p: z_L = eps_L,          z_i = g_i(eps_i; z_{i+1})         (generative order L..1)

so each is a TFP `TransformedDistribution` of N(0, I) over the whole of z by
a `MarkovChain` bijector. Its forward map is ancestral sampling (the
reparameterization, and the export's `sample`); its inverse and log-determinant
take every layer at once, given z: log q(z|x) and log p(z) are exact, without
a sequential pass. With z as one vector the bounds, importance sampling,
estimators and exports work as for one layer; the KL is Monte Carlo.
"""

import tensorflow as tf
import tensorflow_probability as tfp

__all__ = ["MarkovChain", "posterior_distribution", "prior_distribution"]

tfb = tfp.bijectors
tfd = tfp.distributions


class MarkovChain(tfb.Bijector):
    """Maps noise to z block by block, each block an affine bijector given its parent.

    Args:
        sizes: Sizes of the blocks of the last axis, in their order in z.
        parents: For each block, the index of the block it is conditioned
            on, or None for the root; they form a chain.
        link: `link(block, parent_value)` -> the bijector of block `block` from
            standard-normal noise to the block, given its parent's value (None
            for the root), with event shape `(sizes[block],)`.
    """

    def __init__(self, sizes, parents, link, name="markov_chain"):
        parameters = dict(locals())
        self._sizes = [int(size) for size in sizes]
        self._parents = list(parents)
        self._link = link
        # Parents before children: the order of ancestral sampling.
        self._order = [self._parents.index(None)]
        while len(self._order) < len(self._sizes):
            self._order.append(self._parents.index(self._order[-1]))
        self._links = None  # (z, links) of the last z seen: inverse and its Jacobian share them
        super().__init__(forward_min_event_ndims=1, parameters=parameters, name=name)

    def __eq__(self, other):
        # Two chains are the same map only if they are the same object: TFP takes equal
        # bijectors to mean KL(TD(a) || TD(b)) = KL(a || b), which two chains do not satisfy.
        return self is other

    def __hash__(self):
        return id(self)

    def _links_at(self, z):
        if self._links is None or self._links[0] is not z:
            blocks = tf.split(z, self._sizes, axis=-1)
            links = [
                self._link(block, None if parent is None else blocks[parent])
                for block, parent in enumerate(self._parents)
            ]
            self._links = (z, blocks, links)
        return self._links[1:]

    def _forward(self, noise):
        noise = tf.split(noise, self._sizes, axis=-1)
        blocks, links = [None] * len(self._sizes), [None] * len(self._sizes)
        for block in self._order:
            parent = self._parents[block]
            links[block] = self._link(block, None if parent is None else blocks[parent])
            blocks[block] = links[block].forward(noise[block])
        z = tf.concat(blocks, axis=-1)
        self._links = (z, blocks, links)
        return z

    def _inverse(self, z):
        blocks, links = self._links_at(z)
        return tf.concat(
            [link.inverse(block) for link, block in zip(links, blocks, strict=True)], axis=-1
        )

    def _inverse_log_det_jacobian(self, z):
        blocks, links = self._links_at(z)
        # Summed with broadcasting: the root's Jacobian has no sample axis.
        return sum(
            link.inverse_log_det_jacobian(block, event_ndims=1)
            for link, block in zip(links, blocks, strict=True)
        )


def _standard_normal(size, batch_shape=None):
    shape = [size] if batch_shape is None else tf.concat([batch_shape, [size]], axis=0)
    return tfd.MultivariateNormalDiag(loc=tf.zeros(shape), scale_diag=tf.ones(shape))


def _affine(distribution):
    # A Gaussian family's TFP distribution is N(0, I) pushed through loc + scale @ eps.
    return distribution.bijector


def posterior_distribution(vae, parameters, hold_weights=False):
    """q(z|x) = q(z_1|x) prod_i q(z_i|z_{i-1}) from q(z_1|x)'s `parameters`.

    With `hold_weights`, phi is held: q(z_1|x)'s parameters and the layers'
    weights get no gradient, z does (for STL and DReG).
    """
    layers = vae.latent_layers

    def link(block, below):
        if block == 0:
            if hold_weights:
                return _affine(vae.posterior.held_distribution(parameters))
            return _affine(vae.posterior.distribution(parameters))
        layer = layers[block - 1]
        below_parameters = layer.posterior_parameters(below, hold_weights)
        return _affine(layer.posterior.distribution(below_parameters))

    sizes = [vae.latent_dim] + [layer.latent_dim for layer in layers]
    chain = MarkovChain(sizes, [None, *range(len(layers))], link, name="posterior_chain")
    batch_shape = tf.shape(parameters["loc"])[:-1]  # (batch,), as q(z_1|x)'s
    return tfd.TransformedDistribution(_standard_normal(sum(sizes), batch_shape), chain)


def prior_distribution(vae):
    """p(z) = p(z_L) prod_i p(z_i|z_{i+1}), p(z_L) the model's prior."""
    layers = vae.latent_layers

    def link(block, above):
        if block == len(layers):
            return _affine(vae.prior.distribution(vae.encode))
        layer = layers[block]
        return _affine(layer.prior.distribution(layer.prior_parameters(above)))

    sizes = [vae.latent_dim] + [layer.latent_dim for layer in layers]
    parents = [*range(1, len(layers) + 1), None]
    chain = MarkovChain(sizes, parents, link, name="prior_chain")
    return tfd.TransformedDistribution(_standard_normal(sum(sizes)), chain)
