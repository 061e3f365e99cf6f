"""``EinsumDense``: a dense layer written as one ``np.einsum`` equation, and the two
gradients of any two-operand einsum.

An einsum equation names every axis with a letter: ``"abc,cd->abd"`` multiplies
x (a, b, c) by a kernel (c, d) and sums over ``c``, the letter missing from the
output. Its gradients are einsums too, with the roles of the terms swapped:

    z = einsum("X,W->Z", x, w)
    dx = einsum("Z,W->X", dz, w)      every letter of X is in Z or W
    dw = einsum("X,Z->W", x, dz)

A letter of X that is in neither Z nor W (x summed over that axis alone) gets the
same gradient at every position: the einsum leaves it out and the result is
broadcast back along it (``operand_grad``). ``...`` stands for the axes the other
letters do not name; it is replaced by letters of its own once the input's rank
is known (``explicit``), so the gradients can name those axes too.
"""

import string

import numpy as np

from numpy_ref.layers import activations
from numpy_ref.layers import core
from numpy_ref import layers as L


def split(equation):
    """"ab,bc->ac" -> (["ab", "bc"], "ac")."""
    inputs, output = equation.replace(" ", "").split("->")
    return inputs.split(","), output


def explicit(equation, ndims):
    """The equation with each ``...`` replaced by letters it does not use, as many as
    the axes it stands for in the term of the first operand that has it (``ndims``: the
    operands' ranks). "...b,bc->...c" with a rank-3 x -> "ABb,bc->ABc"."""
    if "..." not in equation:
        return equation
    terms, output = split(equation)
    free = [c for c in string.ascii_letters if c not in equation]
    for term, ndim in zip(terms, ndims):
        if "..." in term:
            letters = "".join(free[:ndim - (len(term) - 3)])
            return equation.replace("...", letters)
    raise ValueError(f"the equation {equation!r} has '...' only in its output")


def check_terms(equation):
    """A ValueError where a term names one axis twice (a diagonal), which these
    gradients do not cover."""
    terms, output = split(equation)
    for term in (*terms, output):
        letters = term.replace("...", "")
        if len(set(letters)) != len(letters):
            raise ValueError(f"einsum term {term!r} of {equation!r} repeats a letter "
                             "(a diagonal), which has no gradient here")


def operand_grad(dz, out_term, other, other_term, term, shape):
    """dL/d(operand) of z = einsum(f"{term},{other_term}->{out_term}", operand, other),
    given dz = dL/dz; ``shape`` is the operand's shape."""
    kept = "".join(c for c in term if c in out_term or c in other_term)
    grad = np.einsum(f"{out_term},{other_term}->{kept}", dz, other)
    # Axes the operand summed alone: the same gradient at every position along them.
    grad = grad.reshape([shape[i] if c in kept else 1 for i, c in enumerate(term)])
    return np.broadcast_to(grad, shape).copy() if grad.shape != tuple(shape) else grad


def unbroadcast(grad, shape):
    """Sums ``grad`` down to ``shape``, which broadcast to it (a bias's gradient)."""
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra))) if extra else grad
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


class EinsumDense(L.Layer):
    """y = activation(einsum(equation, x, kernel) + bias), the twin of
    ``keras.layers.EinsumDense``.

    Args:
        equation: "X,W->Z" for the input x and the kernel, ``...`` allowed in X and Z
            (Keras's forms: "ab,bc->ac", "...b,bc->...c", "ab...,bc->ac...").
        kernel: the kernel, shaped as W names it.
        bias: None, or Keras's bias: shaped like the trailing axes of Z from the first
            bias axis on, 1 on the axes without a bias; it broadcasts against z.
        activation: a ``numpy_ref.layers.activations`` name or layer.

    Backward: dz through the activation; dkernel = einsum("X,Z->W", x, dz);
    dbias = dz summed down to the bias's shape; dx = einsum("Z,W->X", dz, kernel).
    """

    def __init__(self, equation, kernel, bias=None, activation="linear"):
        super().__init__()
        check_terms(equation)
        self.equation = equation
        self.params["kernel"] = np.asarray(kernel)
        if bias is not None:
            self.params["bias"] = np.asarray(bias)
        self.activation = (activation if isinstance(activation, L.Layer)
                           else activations.get(activation))

    def get_config(self):
        return {"equation": self.equation, **core.activation_config(self.activation)}

    @classmethod
    def from_config(cls, config, params=None, state=None):
        config = dict(config)
        equation = config.pop("equation")
        return cls(equation, params["kernel"], params.get("bias"),
                   core.activation_from_config(config))

    def forward(self, x, training=False):
        kernel = self.params["kernel"]
        self.x = x
        self.terms = split(explicit(self.equation, (x.ndim, kernel.ndim)))
        (x_term, w_term), z_term = self.terms
        z = np.einsum(f"{x_term},{w_term}->{z_term}", x, kernel)
        if "bias" in self.params:
            z = z + self.params["bias"]
        return self.activation.forward(z, training=training)

    def backward(self, dout):
        dz = self.backward_weights(dout)
        (x_term, w_term), z_term = self.terms
        return operand_grad(dz, z_term, self.params["kernel"], w_term, x_term, self.x.shape)

    def backward_weights(self, dout):
        """Stores dkernel and dbias; returns dz, the gradient before the activation."""
        dz = self.activation.backward(dout)
        (x_term, w_term), z_term = self.terms
        kernel = self.params["kernel"]
        self.grads["kernel"] = operand_grad(dz, z_term, self.x, x_term, w_term, kernel.shape)
        if "bias" in self.params:
            self.grads["bias"] = unbroadcast(dz, self.params["bias"].shape)
        return dz


__all__ = ["EinsumDense", "check_terms", "explicit", "operand_grad", "split", "unbroadcast"]
