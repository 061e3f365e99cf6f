# ch06: the same deep net with and without batch normalization, from the same weights
# (argv: epochs, weight_init_std, seed; the book: 20, a sweep of 16 stds, none).
import sys, os
sys.path.append(os.pardir)
import numpy as np
from dataset.mnist import load_mnist
from common.multi_layer_net_extend import MultiLayerNetExtend
from common.optimizer import SGD

(x_train, t_train), (x_test, t_test) = load_mnist(normalize=True)
x_train = x_train[:1000]
t_train = t_train[:1000]

max_epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
weight_init_std = float(sys.argv[2]) if len(sys.argv) > 2 else 0.1
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
train_size = x_train.shape[0]
batch_size = 100
learning_rate = 0.01


def train(use_batchnorm):
    np.random.seed(seed)
    network = MultiLayerNetExtend(input_size=784, hidden_size_list=[100, 100, 100, 100, 100],
                                  output_size=10, weight_init_std=weight_init_std,
                                  use_batchnorm=use_batchnorm)
    optimizer = SGD(lr=learning_rate)
    acc_list = []
    iter_per_epoch = max(train_size / batch_size, 1)
    for i in range(1000000000):
        batch_mask = np.random.choice(train_size, batch_size)
        grads = network.gradient(x_train[batch_mask], t_train[batch_mask])
        optimizer.update(network.params, grads)
        if i % iter_per_epoch == 0:
            acc_list.append(network.accuracy(x_train, t_train))
            if len(acc_list) >= max_epochs:
                break
    return network, acc_list


bn_network, bn_acc = train(True)
network, acc = train(False)
print("params:" + ",".join(bn_network.params.keys()))
print("running mean of BatchNorm1:" + str(float(np.abs(bn_network.layers['BatchNorm1'].running_mean).mean())))
print("batch norm train acc:" + str(bn_acc[-1]))
print("plain train acc:" + str(acc[-1]))
