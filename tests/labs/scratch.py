"""Layers from the "from scratch" books: parameters and gradients kept as attributes.

`forward` stores `self.output` and returns nothing; `backward(dvalues)` stores `dinputs`,
`dweights`, `dbiases`. The bias is a (1, n) row.
"""

import numpy as np


class Layer_Dense:
    def __init__(self, n_inputs, n_neurons):
        self.weights = 0.01 * np.random.default_rng(0).standard_normal((n_inputs, n_neurons))
        self.biases = np.zeros((1, n_neurons))

    def forward(self, inputs):
        self.inputs = inputs
        self.output = np.dot(inputs, self.weights) + self.biases

    def backward(self, dvalues):
        self.dweights = np.dot(self.inputs.T, dvalues)
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = np.dot(dvalues, self.weights.T)


class Layer_Dense_dweights_mean(Layer_Dense):
    """Divides dweights by the number of samples, as if the layer took the mean."""

    def backward(self, dvalues):
        super().backward(dvalues)
        self.dweights = self.dweights / len(dvalues)


class Activation_ReLU:
    def forward(self, inputs):
        self.inputs = inputs
        self.output = np.maximum(0, inputs)

    def backward(self, dvalues):
        self.dinputs = dvalues.copy()
        self.dinputs[self.inputs <= 0] = 0


class Activation_LeakyReLU:
    """Its slope required by the constructor, as the reference's keyword is named."""

    def __init__(self, alpha):
        self.alpha = alpha

    def forward(self, inputs):
        self.inputs = inputs
        self.output = np.where(inputs > 0, inputs, self.alpha * inputs)

    def backward(self, dvalues):
        self.dinputs = np.where(self.inputs > 0, dvalues, self.alpha * dvalues)


class Activation_ReLU_no_copy:
    """Zeroes the incoming gradient itself: dinputs is dvalues."""

    def forward(self, inputs):
        self.inputs = inputs
        self.output = np.maximum(0, inputs)

    def backward(self, dvalues):
        self.dinputs = dvalues
        self.dinputs[self.inputs <= 0] = 0


class Activation_Sigmoid:
    def forward(self, inputs):
        self.inputs = inputs
        self.output = np.exp(-np.logaddexp(0, -inputs))  # 1 / (1 + exp(-x)) without overflow

    def backward(self, dvalues):
        self.dinputs = dvalues * (1 - self.output) * self.output


class Activation_Sigmoid_at_input:
    """Writes sigmoid's derivative in terms of its output, s * (1 - s), but with the input."""

    def forward(self, inputs):
        self.inputs = inputs
        self.output = np.exp(-np.logaddexp(0, -inputs))

    def backward(self, dvalues):
        self.dinputs = dvalues * self.inputs * (1 - self.inputs)


class Activation_Sigmoid_scales_state:
    """Scales the stored output in place: a second backward sees another output."""

    def forward(self, inputs):
        self.output = np.exp(-np.logaddexp(0, -inputs))

    def backward(self, dvalues):
        self.output *= 1 - self.output
        self.dinputs = dvalues * self.output


class Loss:
    """The book's common loss class: calculate is the mean of forward's per-row losses."""

    def calculate(self, output, y):
        sample_losses = self.forward(output, y)
        data_loss = np.mean(sample_losses)
        return data_loss


class Loss_MeanSquaredError(Loss):
    """forward: one loss per row, the mean over its outputs (calculate: the mean over every entry);
    backward(dvalues, y_true) starts backpropagation."""

    def forward(self, y_pred, y_true):
        sample_losses = np.mean((y_true - y_pred) ** 2, axis=-1)
        return sample_losses

    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        outputs = len(dvalues[0])
        self.dinputs = -2 * (y_true - dvalues) / outputs
        self.dinputs = self.dinputs / samples


class Loss_Accumulating:
    """The book's common loss class as its last chapters write it: calculate also adds to running
    sums over a pass, which new_pass starts."""

    def remember_trainable_layers(self, trainable_layers):
        self.trainable_layers = trainable_layers

    def regularization_loss(self):
        regularization_loss = 0
        for layer in self.trainable_layers:
            if layer.weight_regularizer_l2 > 0:
                regularization_loss += layer.weight_regularizer_l2 * np.sum(layer.weights * layer.weights)
        return regularization_loss

    def calculate(self, output, y, *, include_regularization=False):
        sample_losses = self.forward(output, y)
        data_loss = np.mean(sample_losses)
        self.accumulated_sum += np.sum(sample_losses)
        self.accumulated_count += len(sample_losses)
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def calculate_accumulated(self, *, include_regularization=False):
        data_loss = self.accumulated_sum / self.accumulated_count
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def new_pass(self):
        self.accumulated_sum = 0
        self.accumulated_count = 0


class Loss_MeanSquaredError_pass(Loss_Accumulating, Loss_MeanSquaredError):
    """Loss_MeanSquaredError under the book's last loss class: new_pass before calculate."""


class Loss_MeanSquaredError_rows(Loss_MeanSquaredError):
    """Divides by the number of samples only: the mean over rows, where the loss is over entries."""

    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        self.dinputs = -2 * (y_true - dvalues) / samples


class SquaredLoss:
    """(1/n) sum (y_hat - y)^2; backward() takes no argument and returns both gradients."""

    def forward(self, y_hat, y):
        self.diff = y_hat - y
        return np.sum(self.diff**2) / len(y)

    def backward(self):
        d = 2 * self.diff / len(self.diff)
        return d, -d


class SquaredLoss_flipped(SquaredLoss):
    """Every sign flipped: the gradient of -loss."""

    def backward(self):
        d, dy = super().backward()
        return -d, -dy


class SquaredLoss_dout_one(SquaredLoss):
    """backward(dout=1) that ignores dout: it always starts backpropagation."""

    def backward(self, dout=1.0):
        return super().backward()
