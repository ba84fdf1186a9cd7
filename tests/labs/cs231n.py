"""Layers in the CS231n style: function pairs with a cache, and losses returning their gradient.

Each right one is written as the assignment's solutions write it; each wrong one has one mistake
that real submissions make, named in its docstring.
"""

import numpy as np


def affine_forward(x, w, b):
    out = x @ w + b
    return out, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_dw_transposed_forward(x, w, b):
    return affine_forward(x, w, b)


def affine_dw_transposed_backward(dout, cache):
    """dw = dout.T @ x: the transpose of the right answer."""
    x, w = cache
    return dout @ w.T, dout.T @ x, dout.sum(axis=0)


def affine_db_mean_forward(x, w, b):
    return affine_forward(x, w, b)


def affine_db_mean_backward(dout, cache):
    """db averaged over the batch instead of summed."""
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.mean(axis=0)


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    x = cache
    dx = dout.copy()
    dx[x <= 0] = 0
    return dx


def relu_dout_mask_forward(x):
    return np.maximum(0, x), x


def relu_dout_mask_backward(dout, cache):
    """Masks on the upstream gradient instead of the input."""
    return dout * (dout > 0)


def hard_tanh_forward(x):
    """clip(x, -1, 1), passing the gradient on the closed interval [-1, 1]."""
    return np.clip(x, -1, 1), x


def hard_tanh_backward(dout, cache):
    x = cache
    return dout * ((x >= -1) & (x <= 1))


def relu_in_place_forward(x):
    return np.maximum(0, x), x


def relu_in_place_backward(dout, cache):
    """Zeroes dout itself instead of a copy."""
    dout[cache <= 0] = 0
    return dout


def relu_no_return_forward(x):
    return np.maximum(0, x), x


def relu_no_return_backward(dout, cache):
    """Computes dx and forgets to return it."""
    dx = dout.copy()
    dx[cache <= 0] = 0


def leaky_relu_forward(x, alpha=0.01):
    out = np.where(x > 0, x, alpha * x)
    return out, (x, alpha)


def leaky_relu_backward(dout, cache):
    x, alpha = cache
    return np.where(x > 0, dout, alpha * dout)


def leaky_relu_alpha_forward(x, alpha):
    """The slope required: no default of its own."""
    return leaky_relu_forward(x, alpha)


def tanh_forward(x):
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    out = cache
    return dout * (1 - out**2)


def tanh_at_output_forward(x):
    out = np.tanh(x)
    return out, out


def tanh_at_output_backward(dout, cache):
    """Applies tanh again to what the cache holds: the derivative at the output, not the input."""
    return dout * (1 - np.tanh(cache) ** 2)


def tanh_at_input_forward(x):
    out = np.tanh(x)
    return out, x


def tanh_at_input_backward(dout, cache):
    """Caches the input and uses it where tanh's derivative wants the output (1 - out**2)."""
    x = cache
    return dout * (1 - x**2)


def relu_nonzero_forward(x):
    return np.maximum(x, 0), x


def relu_nonzero_backward(dout, cache):
    """Masks on ``x != 0`` where ReLU's mask is ``x > 0``: passes dout for negative inputs."""
    return dout * (cache != 0)


def batchnorm_forward(x, gamma, beta, bn_param):
    eps = bn_param.get("eps", 1e-5)
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta, (x_hat, gamma, var, eps)


def batchnorm_backward(dout, cache):
    x_hat, gamma, var, eps = cache
    n = dout.shape[0]
    dx_hat = dout * gamma
    dx = (n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0)) / (n * np.sqrt(var + eps))
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


def batchnorm_backward_alt(dout, cache):
    """The assignment's second backward for batchnorm_forward, simplified on paper first."""
    x_hat, gamma, var, eps = cache
    dx_hat = dout * gamma
    dx = (dx_hat - dx_hat.mean(axis=0) - x_hat * (dx_hat * x_hat).mean(axis=0)) / np.sqrt(var + eps)
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


def softmax_loss(x, y):
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = x.shape[0]
    loss = -log_probs[np.arange(n), y].sum() / n
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return loss, dx / n


def softmax_loss_no_mean(x, y):
    """Forgets to divide dx by N."""
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = x.shape[0]
    loss = -log_probs[np.arange(n), y].sum() / n
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return loss, dx


def svm_loss(x, y):
    n = x.shape[0]
    correct = x[np.arange(n), y][:, None]
    margins = np.maximum(0, x - correct + 1.0)
    margins[np.arange(n), y] = 0
    loss = margins.sum() / n
    positive = (margins > 0).astype(x.dtype)
    positive[np.arange(n), y] = -positive.sum(axis=1)
    return loss, positive / n


def svm_loss_flipped(x, y):
    """dx with every sign flipped (the correct class pushed up where it should go down)."""
    loss, dx = svm_loss(x, y)
    return loss, -dx


def l2_loss(x, y):
    """A regression loss with float targets: only dx returned, the targets get no gradient."""
    n = x.shape[0]
    diff = x - y
    return (diff**2).sum() / n, 2 * diff / n


def l2_loss_no_two(x, y):
    """Forgets the 2 of the square's derivative."""
    n = x.shape[0]
    diff = x - y
    return (diff**2).sum() / n, diff / n


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """Assignment 3's vanilla RNN step."""
    next_h = np.tanh(x.dot(Wx) + prev_h.dot(Wh) + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h**2)
    return da.dot(Wx.T), da.dot(Wh.T), x.T.dot(da), prev_h.T.dot(da), da.sum(axis=0)


def rnn_step_at_output_forward(x, prev_h, Wx, Wh, b):
    return rnn_step_forward(x, prev_h, Wx, Wh, b)


def rnn_step_at_output_backward(dnext_h, cache):
    """tanh's derivative taken at the output: 1 - tanh(next_h)**2 where next_h is tanh's value."""
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - np.tanh(next_h) ** 2)
    return da.dot(Wx.T), da.dot(Wh.T), x.T.dot(da), prev_h.T.dot(da), da.sum(axis=0)


def rnn_step_from_input_forward(x, prev_h, Wx, Wh, b):
    a = x.dot(Wx) + prev_h.dot(Wh) + b
    return np.tanh(a), (x, prev_h, Wx, Wh, a)


def rnn_step_from_input_backward(dnext_h, cache):
    """tanh's derivative written for the output (1 - out**2) but computed from its input a."""
    x, prev_h, Wx, Wh, a = cache
    da = dnext_h * (1 - a**2)
    return da.dot(Wx.T), da.dot(Wh.T), x.T.dot(da), prev_h.T.dot(da), da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    """Assignment 3's RNN over a sequence x (n, t, d): every hidden state (n, t, h)."""
    h, caches = [h0], []
    for t in range(x.shape[1]):
        next_h, cache = rnn_step_forward(x[:, t], h[-1], Wx, Wh, b)
        h.append(next_h)
        caches.append(cache)
    return np.stack(h[1:], axis=1), caches


def rnn_backward(dh, caches, step_backward=rnn_step_backward):
    n, t, _ = dh.shape
    x, _, Wx, Wh, _ = caches[0]
    dx = np.zeros((n, t, x.shape[1]), dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[0], dh.dtype)
    dprev_h = np.zeros((n, Wh.shape[0]), dh.dtype)
    for s in reversed(range(t)):
        dx[:, s], dprev_h, dWx_s, dWh_s, db_s = step_backward(dh[:, s] + dprev_h, caches[s])
        dWx, dWh, db = dWx + dWx_s, dWh + dWh_s, db + db_s
    return dx, dprev_h, dWx, dWh, db


def rnn_at_output_forward(x, h0, Wx, Wh, b):
    return rnn_forward(x, h0, Wx, Wh, b)


def rnn_at_output_backward(dh, caches):
    """Every step's tanh derivative taken at its output."""
    return rnn_backward(dh, caches, rnn_step_at_output_backward)


def sigmoid(x):
    """Assignment 3's numerically stable sigmoid."""
    pos, neg = x >= 0, x < 0
    z = np.zeros_like(x)
    z[pos] = np.exp(-x[pos])
    z[neg] = np.exp(x[neg])
    top = np.ones_like(x)
    top[neg] = z[neg]
    return top / (1 + z)


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """Assignment 3's LSTM step: two outputs before the cache, gates i, f, o, g."""
    H = prev_h.shape[1]
    a = x.dot(Wx) + prev_h.dot(Wh) + b
    i, f, o, g = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), sigmoid(a[:, 2 * H : 3 * H]), np.tanh(a[:, 3 * H :])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    dc = dnext_c + dnext_h * o * (1 - np.tanh(next_c) ** 2)
    da = np.hstack(
        (dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dnext_h * np.tanh(next_c) * o * (1 - o), dc * i * (1 - g**2))
    )
    return da.dot(Wx.T), da.dot(Wh.T), dc * f, x.T.dot(da), prev_h.T.dot(da), da.sum(axis=0)


def lstm_step_no_dnext_c_forward(x, prev_h, prev_c, Wx, Wh, b):
    return lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)


def lstm_step_no_dnext_c_backward(dnext_h, dnext_c, cache):
    """Forgets the gradient that reaches next_c from the next step: dnext_c."""
    return lstm_step_backward(dnext_h, 0 * dnext_c, cache)


def temporal_softmax_loss(x, y, mask):
    """Assignment 3's loss, written with the mask as an index (``x[mask]``): it needs a boolean
    mask (0/1 integers would pick rows 0 and 1)."""
    n = x.shape[0]
    kept, labels = x[mask], y[mask]  # (m, v) and (m,): the time steps the mask keeps
    shifted = kept - kept.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    loss = -log_probs[rows, labels].sum() / n
    dkept = np.exp(log_probs)
    dkept[rows, labels] -= 1
    dx = np.zeros_like(x)
    dx[mask] = dkept / n
    return loss, dx


def temporal_softmax_loss_sets_mask(x, y, mask):
    """Writes into its mask after using it."""
    loss, dx = temporal_softmax_loss(x, y, mask)
    mask[...] = True
    return loss, dx


def conv_forward_naive(x, w, b, conv_param):
    """Assignment 2's naive convolution: the pair's names end in ``_naive``."""
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, _, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out, W_out = 1 + (H + 2 * pad - HH) // stride, 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((N, F, H_out, W_out))
    for i in range(H_out):
        for j in range(W_out):
            window = x_pad[:, :, i * stride : i * stride + HH, j * stride : j * stride + WW]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    x, w, _, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    _, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad, dw = np.zeros_like(x_pad), np.zeros_like(w)
    for i in range(H_out):
        for j in range(W_out):
            rows, cols = slice(i * stride, i * stride + HH), slice(j * stride, j * stride + WW)
            dw += np.tensordot(dout[:, :, i, j], x_pad[:, :, rows, cols], axes=([0], [0]))
            dx_pad[:, :, rows, cols] += np.tensordot(dout[:, :, i, j], w, axes=([1], [0]))
    dx = dx_pad[:, :, pad : pad + x.shape[2], pad : pad + x.shape[3]]
    return dx, dw, dout.sum(axis=(0, 2, 3))


def conv_flipped_forward(x, w, b, conv_param):
    return conv_forward_naive(x, w, b, conv_param)


def conv_flipped_backward(dout, cache):
    """dw from a textbook's convolution: each window's contribution turned 180 degrees."""
    dx, dw, db = conv_backward_naive(dout, cache)
    return dx, dw[:, :, ::-1, ::-1], db


def max_pool_forward_naive(x, pool_param):
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    H_out, W_out = 1 + (H - ph) // stride, 1 + (W - pw) // stride
    out = np.zeros((N, C, H_out, W_out))
    for i in range(H_out):
        for j in range(W_out):
            out[:, :, i, j] = x[:, :, i * stride : i * stride + ph, j * stride : j * stride + pw].max(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    """Each window's gradient to its first largest entry (``np.argmax``), as the solutions do."""
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i * stride : i * stride + ph, j * stride : j * stride + pw]
                    r, s = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * stride + r, j * stride + s] += dout[n, c, i, j]
    return dx
