"""The book's ``common/trainer.py``: mini-batch training with per-epoch accuracy.

``Trainer`` keeps the book's loop rather than ``numpy_ref.training.run_epochs``:
each step draws its batch independently (``np.random.choice``, with
replacement) instead of walking a permutation, the accuracies are measured after
the *first* step of each epoch (iterations 0, iter_per_epoch, ...) instead of at
its end, and ``train_step()`` is public, one iteration at a time. With
``verbose=True`` it prints what the book's prints, line for line: that output
is part of the book's API, hence ``print`` and not logging.
"""

import numpy as np

from numpy_ref.book.optimizer import OPTIMIZERS


class Trainer:
    """Trains ``network`` (``gradient``, ``loss``, ``accuracy`` and ``params``, as the
    book's networks have) with one of the book's optimizers.

    Args:
        network: the network to train, in place.
        x_train, t_train, x_test, t_test: the data (labels as integers or one-hot).
        epochs: the run is int(epochs * iter_per_epoch) steps, with
            iter_per_epoch = max(train size / mini_batch_size, 1).
        mini_batch_size: images per step.
        optimizer: 'SGD', 'Momentum', 'Nesterov', 'AdaGrad', 'RMSprop' or 'Adam' (any case).
        optimizer_param: the optimizer's keyword arguments; default {'lr': 0.01}.
        evaluate_sample_num_per_epoch: measure the per-epoch accuracies on the first
            this many train and test images (None: all of them).
        verbose: print the loss of every step and the accuracies of every epoch.

    Attributes ``train_loss_list`` (every step's loss, measured after its update),
    ``train_acc_list`` and ``test_acc_list`` (one entry per epoch).
    """

    def __init__(self, network, x_train, t_train, x_test, t_test, epochs=20,
                 mini_batch_size=100, optimizer="SGD", optimizer_param=None,
                 evaluate_sample_num_per_epoch=None, verbose=True):
        name = optimizer.lower()
        if name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} (any case). "
                             f"Received: optimizer={optimizer!r}")
        self.network, self.verbose = network, verbose
        self.x_train, self.t_train, self.x_test, self.t_test = x_train, t_train, x_test, t_test
        self.epochs, self.batch_size = epochs, mini_batch_size
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.optimizer = OPTIMIZERS[name](**(optimizer_param or {"lr": 0.01}))

        self.train_size = x_train.shape[0]
        self.iter_per_epoch = max(self.train_size / mini_batch_size, 1)
        self.max_iter = int(epochs * self.iter_per_epoch)
        self.current_iter, self.current_epoch = 0, 0
        self.train_loss_list, self.train_acc_list, self.test_acc_list = [], [], []

    def train_step(self):
        """One update on a random batch; at an epoch's first step, the accuracies too."""
        batch_mask = np.random.choice(self.train_size, self.batch_size)
        x_batch, t_batch = self.x_train[batch_mask], self.t_train[batch_mask]
        grads = self.network.gradient(x_batch, t_batch)
        self.optimizer.update(self.network.params, grads)

        loss = self.network.loss(x_batch, t_batch)
        self.train_loss_list.append(loss)
        if self.verbose:
            print("train loss:" + str(loss))

        if self.current_iter % self.iter_per_epoch == 0:
            self.current_epoch += 1
            self._evaluate()
        self.current_iter += 1

    def _evaluate(self):
        n = self.evaluate_sample_num_per_epoch  # None: every image
        train_acc = self.network.accuracy(self.x_train[:n], self.t_train[:n])
        test_acc = self.network.accuracy(self.x_test[:n], self.t_test[:n])
        self.train_acc_list.append(train_acc)
        self.test_acc_list.append(test_acc)
        if self.verbose:
            print(f"=== epoch:{self.current_epoch}, train acc:{train_acc}, "
                  f"test acc:{test_acc} ===")

    def train(self):
        """``max_iter`` steps, then the accuracy on the whole test set (printed)."""
        for _ in range(self.max_iter):
            self.train_step()
        test_acc = self.network.accuracy(self.x_test, self.t_test)
        if self.verbose:
            print("=============== Final Test Accuracy ===============")
            print("test acc:" + str(test_acc))
